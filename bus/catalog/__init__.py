"""The schema catalog (DESIGN §3): kinds, versions, code lists, XSD/Avro codecs.

    from bus.catalog import Catalog, KindSchema
    ks = Catalog.load().get("jumin.idou")

`schemas/` is data: `codelists.yaml` and `<kind>/<version>/fields.yaml` are written by
hand; the `.xsd`, `.avsc`, sample `.avro` files and docs/schemas.md are generated from them
by `renkei schemas build` (bus.catalog.generate).
"""

from bus.catalog.catalog import Catalog
from bus.catalog.codelists import Code, CodeList, CodeLists
from bus.catalog.kind import KindSchema
from bus.catalog.spec import Field, KindSpec

__all__ = ["Catalog", "Code", "CodeList", "CodeLists", "Field", "KindSchema", "KindSpec"]
