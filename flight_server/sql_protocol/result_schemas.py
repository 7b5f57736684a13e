"""The Arrow schemas Flight SQL fixes for metadata results (``GET_*_SCHEMA``).

Nullability matters: ADBC compares reply schemas field by field (arrow-go schema_ref;
docs/flight-sql-clients.md, "Catalog metadata"); these match it and Arrow C++'s SqlSchema.
"""

from __future__ import annotations

import pyarrow as pa
from google.protobuf.message import Message

__all__ = [
    "GET_CATALOGS_SCHEMA",
    "GET_CROSS_REFERENCE_SCHEMA",
    "GET_DB_SCHEMAS_SCHEMA",
    "GET_EXPORTED_KEYS_SCHEMA",
    "GET_IMPORTED_KEYS_SCHEMA",
    "GET_PRIMARY_KEYS_SCHEMA",
    "GET_SQL_INFO_SCHEMA",
    "GET_TABLES_SCHEMA",
    "GET_TABLES_SCHEMA_WITH_SCHEMA",
    "GET_TABLE_TYPES_SCHEMA",
    "GET_XDBC_TYPE_INFO_SCHEMA",
    "SQL_INFO_VALUE_TYPE",
    "metadata_schema",
]

_utf8 = pa.utf8()

GET_CATALOGS_SCHEMA = pa.schema([pa.field("catalog_name", _utf8, nullable=False)])

GET_DB_SCHEMAS_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", _utf8, nullable=True),
        pa.field("db_schema_name", _utf8, nullable=False),
    ]
)

GET_TABLES_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", _utf8, nullable=True),
        pa.field("db_schema_name", _utf8, nullable=True),
        pa.field("table_name", _utf8, nullable=False),
        pa.field("table_type", _utf8, nullable=False),
    ]
)

GET_TABLES_SCHEMA_WITH_SCHEMA = GET_TABLES_SCHEMA.append(
    pa.field("table_schema", pa.binary(), nullable=False)
)

GET_TABLE_TYPES_SCHEMA = pa.schema([pa.field("table_type", _utf8, nullable=False)])

#: The dense union of GetSqlInfo values: members in this order, type codes 0..5, members
#: not nullable (as in arrow-go and Arrow C++). The list items are named "item" and are
#: nullable; the map is ``map<int32, list<int32>>`` with pyarrow's default naming.
SQL_INFO_VALUE_TYPE = pa.dense_union(
    [
        pa.field("string_value", _utf8, nullable=False),
        pa.field("bool_value", pa.bool_(), nullable=False),
        pa.field("bigint_value", pa.int64(), nullable=False),
        pa.field("int32_bitmask", pa.int32(), nullable=False),
        pa.field("string_list", pa.list_(_utf8), nullable=False),
        pa.field(
            "int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), nullable=False
        ),
    ],
    type_codes=[0, 1, 2, 3, 4, 5],
)

GET_SQL_INFO_SCHEMA = pa.schema(
    [
        pa.field("info_name", pa.uint32(), nullable=False),
        pa.field("value", SQL_INFO_VALUE_TYPE, nullable=False),
    ]
)

# The spec's comment lists key_name before key_sequence; every implementation (arrow-go
# schema_ref, Arrow C++, Java) puts key_sequence first. We follow the implementations.
GET_PRIMARY_KEYS_SCHEMA = pa.schema(
    [
        pa.field("catalog_name", _utf8, nullable=True),
        pa.field("db_schema_name", _utf8, nullable=True),
        pa.field("table_name", _utf8, nullable=False),
        pa.field("column_name", _utf8, nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("key_name", _utf8, nullable=True),
    ]
)

_KEYS_SCHEMA = pa.schema(
    [
        pa.field("pk_catalog_name", _utf8, nullable=True),
        pa.field("pk_db_schema_name", _utf8, nullable=True),
        pa.field("pk_table_name", _utf8, nullable=False),
        pa.field("pk_column_name", _utf8, nullable=False),
        pa.field("fk_catalog_name", _utf8, nullable=True),
        pa.field("fk_db_schema_name", _utf8, nullable=True),
        pa.field("fk_table_name", _utf8, nullable=False),
        pa.field("fk_column_name", _utf8, nullable=False),
        pa.field("key_sequence", pa.int32(), nullable=False),
        pa.field("fk_key_name", _utf8, nullable=True),
        pa.field("pk_key_name", _utf8, nullable=True),
        pa.field("update_rule", pa.uint8(), nullable=False),
        pa.field("delete_rule", pa.uint8(), nullable=False),
    ]
)
GET_EXPORTED_KEYS_SCHEMA = _KEYS_SCHEMA
GET_IMPORTED_KEYS_SCHEMA = _KEYS_SCHEMA
GET_CROSS_REFERENCE_SCHEMA = _KEYS_SCHEMA

GET_XDBC_TYPE_INFO_SCHEMA = pa.schema(
    [
        pa.field("type_name", _utf8, nullable=False),
        pa.field("data_type", pa.int32(), nullable=False),
        pa.field("column_size", pa.int32(), nullable=True),
        pa.field("literal_prefix", _utf8, nullable=True),
        pa.field("literal_suffix", _utf8, nullable=True),
        pa.field("create_params", pa.list_(pa.field("item", _utf8, nullable=False)), nullable=True),
        pa.field("nullable", pa.int32(), nullable=False),
        pa.field("case_sensitive", pa.bool_(), nullable=False),
        pa.field("searchable", pa.int32(), nullable=False),
        pa.field("unsigned_attribute", pa.bool_(), nullable=True),
        pa.field("fixed_prec_scale", pa.bool_(), nullable=False),
        pa.field("auto_increment", pa.bool_(), nullable=True),
        pa.field("local_type_name", _utf8, nullable=True),
        pa.field("minimum_scale", pa.int32(), nullable=True),
        pa.field("maximum_scale", pa.int32(), nullable=True),
        pa.field("sql_data_type", pa.int32(), nullable=False),
        pa.field("datetime_subcode", pa.int32(), nullable=True),
        pa.field("num_prec_radix", pa.int32(), nullable=True),
        pa.field("interval_precision", pa.int32(), nullable=True),
    ]
)

_FIXED_SCHEMAS: dict[str, pa.Schema] = {
    "CommandGetCatalogs": GET_CATALOGS_SCHEMA,
    "CommandGetDbSchemas": GET_DB_SCHEMAS_SCHEMA,
    "CommandGetTableTypes": GET_TABLE_TYPES_SCHEMA,
    "CommandGetSqlInfo": GET_SQL_INFO_SCHEMA,
    "CommandGetPrimaryKeys": GET_PRIMARY_KEYS_SCHEMA,
    "CommandGetExportedKeys": GET_EXPORTED_KEYS_SCHEMA,
    "CommandGetImportedKeys": GET_IMPORTED_KEYS_SCHEMA,
    "CommandGetCrossReference": GET_CROSS_REFERENCE_SCHEMA,
    "CommandGetXdbcTypeInfo": GET_XDBC_TYPE_INFO_SCHEMA,
}


def metadata_schema(command: Message) -> pa.Schema | None:
    """The fixed result schema of a metadata command, for GetSchema and FlightInfo.

    Returns:
        The spec schema (GetTables depends on ``include_schema``), or None when ``command``
        is not a metadata command (queries, updates, ...).
    """
    name = command.DESCRIPTOR.name
    if name == "CommandGetTables":
        return GET_TABLES_SCHEMA_WITH_SCHEMA if command.include_schema else GET_TABLES_SCHEMA
    return _FIXED_SCHEMAS.get(name)
