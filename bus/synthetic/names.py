"""Name tables for the synthetic registry: family names, given names, foreign names.

Data only. Every entry is ``漢字:カナ`` (the reading in full-width katakana, as the registry
records it). Given names carry the birth cohorts they fit: ``o`` born before 1960, ``m``
1960-1994, ``y`` 1995 or later, so a 90-year-old is not called 陽翔.
Every string is NFC and free of private-use characters (a test checks it).
"""

from __future__ import annotations

__all__ = [
    "ABROAD_COUNTRIES",
    "ALIAS_FAMILY_NAMES",
    "FAMILY_NAMES",
    "FOREIGN_NAMES",
    "GIVEN_NAMES",
    "NAME_VARIANTS",
    "NATIONALITY_WEIGHTS",
    "cohort",
]

_FAMILY = """
佐藤:サトウ 鈴木:スズキ 高橋:タカハシ 田中:タナカ 伊藤:イトウ 渡辺:ワタナベ 山本:ヤマモト 中村:ナカムラ
小林:コバヤシ 加藤:カトウ 吉田:ヨシダ 山田:ヤマダ 佐々木:ササキ 山口:ヤマグチ 松本:マツモト 井上:イノウエ
木村:キムラ 林:ハヤシ 斎藤:サイトウ 清水:シミズ 山崎:ヤマザキ 森:モリ 池田:イケダ 橋本:ハシモト
阿部:アベ 石川:イシカワ 山下:ヤマシタ 中島:ナカジマ 石井:イシイ 小川:オガワ 前田:マエダ 岡田:オカダ
長谷川:ハセガワ 藤田:フジタ 後藤:ゴトウ 近藤:コンドウ 村上:ムラカミ 遠藤:エンドウ 青木:アオキ 坂本:サカモト
斉藤:サイトウ 福田:フクダ 太田:オオタ 西村:ニシムラ 藤井:フジイ 金子:カネコ 岡本:オカモト 藤原:フジワラ
中野:ナカノ 三浦:ミウラ 原田:ハラダ 中川:ナカガワ 松田:マツダ 竹内:タケウチ 小野:オノ 田村:タムラ
中山:ナカヤマ 和田:ワダ 石田:イシダ 森田:モリタ 上田:ウエダ 原:ハラ 内田:ウチダ 柴田:シバタ
酒井:サカイ 宮崎:ミヤザキ 横山:ヨコヤマ 高木:タカギ 安藤:アンドウ 宮本:ミヤモト 大野:オオノ 小島:コジマ
谷口:タニグチ 今井:イマイ 工藤:クドウ 高田:タカダ 増田:マスダ 丸山:マルヤマ 杉山:スギヤマ 村田:ムラタ
大塚:オオツカ 小山:コヤマ 藤本:フジモト 平野:ヒラノ 新井:アライ 河野:コウノ 上野:ウエノ 野口:ノグチ
武田:タケダ 松井:マツイ 千葉:チバ 岩崎:イワサキ 菅原:スガワラ 木下:キノシタ 久保:クボ 佐野:サノ
野村:ノムラ 松尾:マツオ 市川:イチカワ 菊地:キクチ 杉本:スギモト 古川:フルカワ 大西:オオニシ 島田:シマダ
水野:ミズノ 桜井:サクライ 高野:タカノ 渡部:ワタナベ 吉川:ヨシカワ 山内:ヤマウチ 西田:ニシダ 飯田:イイダ
菊池:キクチ 西川:ニシカワ 小松:コマツ 北村:キタムラ 安田:ヤスダ 五十嵐:イガラシ 川口:カワグチ 平田:ヒラタ
関:セキ 中田:ナカタ 久保田:クボタ 服部:ハットリ 東:ヒガシ 岩田:イワタ 土屋:ツチヤ 川崎:カワサキ
福島:フクシマ 本田:ホンダ 辻:ツジ 樋口:ヒグチ 秋山:アキヤマ 田代:タシロ 中西:ナカニシ 松下:マツシタ
大橋:オオハシ 星野:ホシノ 永井:ナガイ 吉村:ヨシムラ 荒木:アラキ 浅野:アサノ 大久保:オオクボ 松岡:マツオカ
内藤:ナイトウ 桑原:クワバラ 小池:コイケ 熊谷:クマガイ 川上:カワカミ 黒田:クロダ 堀:ホリ 尾崎:オザキ
望月:モチヅキ 永田:ナガタ 田口:タグチ 杉浦:スギウラ 大谷:オオタニ 松村:マツムラ 荒井:アライ 平井:ヒライ
片山:カタヤマ 今村:イマムラ 石原:イシハラ 岡崎:オカザキ 小沢:オザワ 河合:カワイ 吉岡:ヨシオカ 早川:ハヤカワ
上原:ウエハラ 竹田:タケダ 須藤:スドウ 高山:タカヤマ 中尾:ナカオ 安部:アベ 坂口:サカグチ 宮田:ミヤタ
北川:キタガワ 大川:オオカワ 水谷:ミズタニ 岡:オカ 松浦:マツウラ 山中:ヤマナカ 飯塚:イイヅカ 高島:タカシマ
宮下:ミヤシタ 栗原:クリハラ 西山:ニシヤマ 中谷:ナカタニ 大石:オオイシ 関口:セキグチ 岩本:イワモト 桑田:クワタ
古田:フルタ 本間:ホンマ 小田:オダ 南:ミナミ 川村:カワムラ 堀内:ホリウチ 富田:トミタ 谷:タニ
白石:シライシ 松原:マツバラ 森本:モリモト 西尾:ニシオ 石橋:イシバシ 岡村:オカムラ 浜田:ハマダ 大島:オオシマ
広瀬:ヒロセ 藤川:フジカワ 三宅:ミヤケ 大森:オオモリ 宇野:ウノ 細川:ホソカワ 西岡:ニシオカ 三上:ミカミ
福井:フクイ 奥村:オクムラ 足立:アダチ 小西:コニシ 森下:モリシタ 長田:ナガタ 浅井:アサイ 吉野:ヨシノ
岸:キシ 竹中:タケナカ 萩原:ハギワラ 篠原:シノハラ 村井:ムライ 川島:カワシマ 堀田:ホッタ 坂井:サカイ
沢田:サワダ 林田:ハヤシダ 松永:マツナガ 矢野:ヤノ 小倉:オグラ 菅野:スガノ 成田:ナリタ 奥田:オクダ
石塚:イシヅカ 中沢:ナカザワ 野田:ノダ 杉田:スギタ 岩井:イワイ 吉本:ヨシモト 榎本:エノモト 新田:ニッタ
松山:マツヤマ 八木:ヤギ 根本:ネモト 相馬:ソウマ 堤:ツツミ 江口:エグチ 西本:ニシモト 石黒:イシグロ
米田:ヨネダ 緒方:オガタ 徳永:トクナガ 日高:ヒダカ 比嘉:ヒガ 金城:キンジョウ 大城:オオシロ 宮城:ミヤギ
新垣:アラカキ 玉城:タマキ 佐久間:サクマ 小野寺:オノデラ 及川:オイカワ 鎌田:カマタ 阿久津:アクツ 渡邉:ワタナベ
大山:オオヤマ 長野:ナガノ 冨永:トミナガ 村松:ムラマツ 津田:ツダ 矢島:ヤジマ 西野:ニシノ 小出:コイデ
宮内:ミヤウチ 加納:カノウ 梅田:ウメダ 野中:ノナカ 稲垣:イナガキ 古賀:コガ 片岡:カタオカ 嶋田:シマダ
"""

_MALE = """
清:キヨシ:o 勇:イサム:o 茂:シゲル:o 実:ミノル:o 進:ススム:o 正:タダシ:o 三郎:サブロウ:o 次郎:ジロウ:o
正雄:マサオ:o 義雄:ヨシオ:o 幸雄:ユキオ:o 敏夫:トシオ:o 秀夫:ヒデオ:o 和夫:カズオ:o 信夫:ノブオ:o 勝:マサル:o
昭:アキラ:o 功:イサオ:o 博:ヒロシ:om 弘:ヒロシ:om 隆:タカシ:om 修:オサム:om 明:アキラ:om 浩:ヒロシ:om
豊:ユタカ:om 稔:ミノル:om 武:タケシ:om 太郎:タロウ:omy 一郎:イチロウ:om 誠:マコト:my 健一:ケンイチ:m
浩二:コウジ:m 正人:マサト:m 雄一:ユウイチ:m 秀樹:ヒデキ:m 直樹:ナオキ:my 大輔:ダイスケ:m 拓也:タクヤ:my
和也:カズヤ:m 達也:タツヤ:m 健太:ケンタ:my 翔太:ショウタ:my 智也:トモヤ:my 純一:ジュンイチ:m 哲也:テツヤ:m
俊介:シュンスケ:my 剛:ツヨシ:m 健:ケン:my 聡:サトシ:m 康弘:ヤスヒロ:m 賢治:ケンジ:m 慎吾:シンゴ:m
恭平:キョウヘイ:my 伸也:シンヤ:m 英樹:ヒデキ:m 徹:トオル:m 洋平:ヨウヘイ:my 亮:リョウ:my 亮太:リョウタ:my
隼人:ハヤト:y 拓海:タクミ:y 優斗:ユウト:y 涼:リョウ:y 翔:ショウ:y 大樹:ダイキ:y 陸:リク:y 蓮:レン:y
湊:ミナト:y 悠真:ユウマ:y 大翔:ヒロト:y 陽翔:ハルト:y 蒼:アオイ:y 樹:イツキ:y 颯太:ソウタ:y 悠人:ハルト:y
奏太:カナタ:y 陽太:ヨウタ:y 海斗:カイト:y 大和:ヤマト:y 結翔:ユイト:y 律:リツ:y 新:アラタ:y 朝陽:アサヒ:y
颯:ハヤテ:y 光:ヒカル:my 航:ワタル:my 悠斗:ユウト:y 陽向:ヒナタ:y 湊斗:ミナト:y
"""

_FEMALE = """
キヨ:キヨ:o ハル:ハル:o トメ:トメ:o 千代子:チヨコ:o 正子:マサコ:o 清子:キヨコ:o 文子:フミコ:o 春子:ハルコ:o
美代子:ミヨコ:o 敏子:トシコ:o 光子:ミツコ:o 良子:ヨシコ:o 富子:トミコ:o 節子:セツコ:o 和子:カズコ:o
幸子:サチコ:o 悦子:エツコ:om 恵子:ケイコ:om 京子:キョウコ:om 洋子:ヨウコ:om 陽子:ヨウコ:om 美智子:ミチコ:om
弘子:ヒロコ:om 典子:ノリコ:m 順子:ジュンコ:m 久美子:クミコ:m 由美子:ユミコ:m 裕子:ユウコ:m 直美:ナオミ:m
真由美:マユミ:m 明美:アケミ:m 智子:トモコ:m 恵美:エミ:m 香織:カオリ:m 美穂:ミホ:m 友美:トモミ:m
加奈子:カナコ:m 理恵:リエ:m 静香:シズカ:m 由佳:ユカ:m 麻美:アサミ:m 亜希子:アキコ:m 瞳:ヒトミ:m 薫:カオル:m
涼子:リョウコ:m 晴美:ハルミ:m 紀子:ノリコ:m 里美:サトミ:m 花子:ハナコ:omy 愛:アイ:my 舞:マイ:my 彩:アヤ:my
麻衣:マイ:my 千尋:チヒロ:my 沙織:サオリ:m 綾乃:アヤノ:my 奈緒:ナオ:my 桃子:モモコ:my 美咲:ミサキ:my
遥:ハルカ:my 七海:ナナミ:y 彩花:アヤカ:y 優奈:ユウナ:y 真央:マオ:y 陽菜:ヒナ:y 結衣:ユイ:y 葵:アオイ:y
凛:リン:y 紬:ツムギ:y 芽依:メイ:y 結菜:ユイナ:y 莉子:リコ:y 美桜:ミオ:y 咲良:サクラ:y 杏:アン:y 澪:ミオ:y
花:ハナ:y 心春:コハル:y 楓:カエデ:y 詩:ウタ:y 陽葵:ヒマリ:y 結愛:ユア:y 琴音:コトネ:y 美月:ミツキ:y
さくら:サクラ:my ひかり:ヒカリ:my みゆき:ミユキ:m 菜々子:ナナコ:my
"""

#: Nationality → (family names, male given names, female given names), each ``name:カナ``.
_FOREIGN = {
    "CN": ("王:ワン 李:リ 張:チャン 劉:リュウ 陳:チン 楊:ヤン 趙:チョウ 黄:コウ",
           "偉:ウェイ 磊:レイ 強:チアン 軍:ジュン 浩然:ハオラン 子軒:ズーシュエン",
           "芳:ファン 娜:ナー 静:ジン 麗:リー 敏:ミン 欣怡:シンイー"),
    "KR": ("金:キム 李:イ 朴:パク 崔:チェ 鄭:チョン 姜:カン 趙:チョ",
           "民俊:ミンジュン 智勲:ジフン 成浩:ソンホ 東賢:ドンヒョン 俊熙:ジュンヒ",
           "瑞妍:ソヨン 秀賢:スヒョン 智恩:ジウン 恩恵:ウネ 美英:ミヨン"),
    "VN": ("NGUYEN:グエン TRAN:チャン LE:レ PHAM:ファム HOANG:ホアン VU:ヴー",
           "VAN MINH:ヴァンミン DUC ANH:ドゥックアイン QUANG HUY:クアンフイ VAN HUNG:ヴァンフン",
           "THI LAN:ティラン THI THAO:ティタオ THU HA:トゥーハー NGOC ANH:ゴックアイン"),
    "PH": ("SANTOS:サントス REYES:レイエス CRUZ:クルス GARCIA:ガルシア BAUTISTA:バウティスタ",
           "JOSE:ホセ MARK ANTHONY:マークアンソニー JOHN PAUL:ジョンポール",
           "MARIA:マリア ANGELICA:アンジェリカ KRISTINE:クリスティン MARICEL:マリセル"),
    "BR": ("SILVA:シルバ OLIVEIRA:オリヴェイラ SOUZA:ソウザ PEREIRA:ペレイラ SANTOS:サントス",
           "LUCAS:ルーカス GABRIEL:ガブリエル RAFAEL:ハファエル",
           "ANA:アナ JULIANA:ジュリアナ FERNANDA:フェルナンダ"),
    "NP": ("GURUNG:グルン SHRESTHA:シュレスタ TAMANG:タマン RAI:ライ",
           "RAM:ラム BIKASH:ビカス SURAJ:スラジ",
           "SITA:シタ ANJALI:アンジャリ SABINA:サビナ"),
    "US": ("SMITH:スミス JOHNSON:ジョンソン BROWN:ブラウン MILLER:ミラー",
           "JOHN:ジョン MICHAEL:マイケル DAVID:デイビッド",
           "EMILY:エミリー SARAH:サラ JESSICA:ジェシカ"),
    "TW": ("林:リン 陳:チェン 黄:ホアン 張:チャン",
           "志明:ジーミン 家豪:ジャーハオ",
           "淑芬:シューフェン 雅婷:ヤーティン"),
}

#: Nationality weights among foreign residents (roughly the national proportions).
NATIONALITY_WEIGHTS: dict[str, int] = {
    "CN": 25, "VN": 20, "KR": 13, "PH": 10, "BR": 7, "NP": 8, "US": 5, "TW": 5,
}

#: Destination countries of 国外転出 for Japanese residents.
ABROAD_COUNTRIES: tuple[str, ...] = ("US", "US", "CN", "AU", "TH", "GB", "CA", "SG", "DE", "KR", "VN", "FR")

#: 誤記修正 (clerical-error corrections) of family names: the form registered by mistake ↔
#: the correct one (異体字, all plain CJK ideographs, NFC-stable).
NAME_VARIANTS: dict[str, tuple[str, str]] = {
    "斉藤": ("齋藤", "サイトウ"),
    "斎藤": ("齊藤", "サイトウ"),
    "渡辺": ("渡邊", "ワタナベ"),
    "渡邉": ("渡辺", "ワタナベ"),
    "高橋": ("髙橋", "タカハシ"),
    "浜田": ("濱田", "ハマダ"),
    "島田": ("嶋田", "シマダ"),
    "嶋田": ("島田", "シマダ"),
    "中島": ("中嶋", "ナカジマ"),
    "沢田": ("澤田", "サワダ"),
    "中沢": ("中澤", "ナカザワ"),
    "小沢": ("小澤", "オザワ"),
    "桜井": ("櫻井", "サクライ"),
    "広瀬": ("廣瀬", "ヒロセ"),
    "富田": ("冨田", "トミタ"),
}


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    out: dict[str, tuple[str, str]] = {}
    for token in text.split():
        name, kana = token.split(":")[:2]
        out.setdefault(name, (name, kana))
    return tuple(out.values())


def _given(text: str) -> dict[str, tuple[tuple[str, str], ...]]:
    by_cohort: dict[str, list[tuple[str, str]]] = {"o": [], "m": [], "y": []}
    for token in text.split():
        name, kana, cohorts = token.split(":")
        for c in cohorts:
            by_cohort[c].append((name, kana))
    return {c: tuple(v) for c, v in by_cohort.items()}


def _foreign_pairs(text: str) -> tuple[tuple[str, str], ...]:
    # foreign given names may hold a space ("VAN MINH"): tokens are "NAME:カナ" split on
    # the colon-delimited pairs, so split on the katakana boundary instead of spaces
    out: list[tuple[str, str]] = []
    name = ""
    for token in text.split(" "):
        if ":" in token:
            left, kana = token.split(":")
            out.append(((name + " " + left).strip(), kana))
            name = ""
        else:
            name = (name + " " + token).strip()
    return tuple(out)


#: (氏, 氏カナ) pairs, a few hundred of the most common Japanese family names.
FAMILY_NAMES: tuple[tuple[str, str], ...] = _pairs(_FAMILY)

#: Given names by sex and birth cohort: ``GIVEN_NAMES["FEMALE"]["y"]`` → ((名, 名カナ), ...).
GIVEN_NAMES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "MALE": _given(_MALE),
    "FEMALE": _given(_FEMALE),
}

#: Nationality → {"family": ..., "MALE": ..., "FEMALE": ...} of (name, カナ) pairs.
FOREIGN_NAMES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    nat: {"family": _foreign_pairs(f), "MALE": _foreign_pairs(m), "FEMALE": _foreign_pairs(w)}
    for nat, (f, m, w) in _FOREIGN.items()
}

#: Japanese-style family names foreign residents register as 通称 (alias).
ALIAS_FAMILY_NAMES: tuple[tuple[str, str], ...] = _pairs(
    "金田:カネダ 金本:カネモト 新井:アライ 松本:マツモト 山本:ヤマモト 林:ハヤシ 大山:オオヤマ 高山:タカヤマ"
)


def cohort(birth_year: int) -> str:
    """The given-name cohort of a birth year: ``o`` (<1960), ``m`` (1960-1994), ``y`` (≥1995)."""
    return "o" if birth_year < 1960 else ("m" if birth_year < 1995 else "y")
