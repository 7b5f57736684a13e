"""Unit tests for flight_server.sql_protocol: messages, schemas, builders, handles."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from arrowlog.errors import InvalidInput, ProtocolError
from flight_server import sql_protocol as sp
from flight_server.sql_protocol import (
    Bitmask,
    SqlInfo,
    TableRow,
    like_match,
    pack,
    unpack,
)

# --- helpers ----------------------------------------------------------------------------


def _type_shape(t: pa.DataType) -> object:
    """Everything about a type that a strict (arrow-go style) comparison looks at."""
    if pa.types.is_map(t):
        children = [t.key_field, t.item_field]
        extra: object = ("map", t.keys_sorted)
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        children = [t.value_field]
        extra = ("list", str(t.id))
    elif pa.types.is_struct(t):
        children = [t.field(i) for i in range(t.num_fields)]
        extra = ("struct",)
    elif pa.types.is_union(t):
        children = [t.field(i) for i in range(t.num_fields)]
        extra = ("union", t.mode, tuple(t.type_codes))
    else:
        return str(t)
    return (extra, tuple(_field_shape(f) for f in children))


def _field_shape(f: pa.Field) -> object:
    return (f.name, f.nullable, f.metadata, _type_shape(f.type))


def _schema_shape(s: pa.Schema) -> object:
    return tuple(_field_shape(f) for f in s)


def assert_schema_exact(actual: pa.Schema, expected: pa.Schema) -> None:
    assert actual.equals(expected)
    assert _schema_shape(actual) == _schema_shape(expected)


def _sample_value(field: FieldDescriptor) -> object:
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-é%_"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"\x00\xff" + field.name.encode()
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64):
        return -7
    if field.type == FieldDescriptor.TYPE_UINT32:
        return 4_000_000_000
    raise AssertionError(f"unexpected field type {field.type} for {field.name}")


def _populate(message: Message) -> Message:
    """Set every field of ``message`` to a non-default value (repeated: two values)."""
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, field.name).update({"k1": "v1", "k2": "v2"})
        elif field.message_type is not None:
            _populate(getattr(message, field.name))
        elif field.is_repeated:
            value = _sample_value(field)
            getattr(message, field.name).extend([value, value])
        else:
            setattr(message, field.name, _sample_value(field))
    return message


# --- messages and the Any envelope --------------------------------------------------------

EXPECTED_FIELDS = {
    # Field numbers from Apache Arrow format/FlightSql.proto.
    "CommandGetSqlInfo": {"info": 1},
    "CommandGetXdbcTypeInfo": {"data_type": 1},
    "CommandGetCatalogs": {},
    "CommandGetDbSchemas": {"catalog": 1, "db_schema_filter_pattern": 2},
    "CommandGetTables": {
        "catalog": 1,
        "db_schema_filter_pattern": 2,
        "table_name_filter_pattern": 3,
        "table_types": 4,
        "include_schema": 5,
    },
    "CommandGetTableTypes": {},
    "CommandGetPrimaryKeys": {"catalog": 1, "db_schema": 2, "table": 3},
    "CommandGetExportedKeys": {"catalog": 1, "db_schema": 2, "table": 3},
    "CommandGetImportedKeys": {"catalog": 1, "db_schema": 2, "table": 3},
    "CommandGetCrossReference": {
        "pk_catalog": 1,
        "pk_db_schema": 2,
        "pk_table": 3,
        "fk_catalog": 4,
        "fk_db_schema": 5,
        "fk_table": 6,
    },
    "CommandStatementQuery": {"query": 1, "transaction_id": 2},
    "CommandStatementUpdate": {"query": 1, "transaction_id": 2},
    "CommandPreparedStatementQuery": {"prepared_statement_handle": 1},
    "CommandPreparedStatementUpdate": {"prepared_statement_handle": 1},
    "CommandStatementIngest": {
        "table_definition_options": 1,
        "table": 2,
        "schema": 3,
        "catalog": 4,
        "temporary": 5,
        "transaction_id": 6,
        "options": 1000,
    },
    "TicketStatementQuery": {"statement_handle": 1},
    "ActionCreatePreparedStatementRequest": {"query": 1, "transaction_id": 2},
    "ActionCreatePreparedStatementResult": {
        "prepared_statement_handle": 1,
        "dataset_schema": 2,
        "parameter_schema": 3,
        "is_update": 4,
    },
    "ActionClosePreparedStatementRequest": {"prepared_statement_handle": 1},
    "ActionBeginTransactionRequest": {},
    "ActionBeginTransactionResult": {"transaction_id": 1},
    "ActionEndTransactionRequest": {"transaction_id": 1, "action": 2},
    "DoPutUpdateResult": {"record_count": 1},
    "DoPutPreparedStatementResult": {"prepared_statement_handle": 1},
    "ActionCancelQueryRequest": {"info": 1},
    "ActionCancelQueryResult": {"result": 1},
    "SubstraitPlan": {"plan": 1, "version": 2},
    "ActionCreatePreparedSubstraitPlanRequest": {"plan": 1, "transaction_id": 2},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FIELDS))
def test_message_field_numbers_follow_the_spec(name: str) -> None:
    descriptor = sp.MESSAGE_CLASSES[name].DESCRIPTOR
    assert descriptor.full_name == f"arrow.flight.protocol.sql.{name}"
    assert {f.name: f.number for f in descriptor.fields} == EXPECTED_FIELDS[name]


@pytest.mark.parametrize("name", sorted(sp.MESSAGE_CLASSES))
def test_every_message_round_trips_through_pack_and_unpack(name: str) -> None:
    cls = sp.MESSAGE_CLASSES[name]
    for message in (cls(), _populate(cls())):
        data = pack(message)
        back = unpack(data)
        assert type(back) is cls
        assert back == message
        assert unpack(data, cls) == message


def test_message_classes_are_module_attributes() -> None:
    for name, cls in sp.MESSAGE_CLASSES.items():
        assert getattr(sp, name) is cls
        assert name in sp.__all__


def test_optional_fields_keep_presence() -> None:
    unset = unpack(pack(sp.CommandGetTables()))
    empty = unpack(pack(sp.CommandGetTables(catalog="")))
    assert not unset.HasField("catalog")
    assert empty.HasField("catalog")
    assert empty.catalog == ""


def test_ingest_nested_options_and_enums() -> None:
    opts = sp.CommandStatementIngest.TableDefinitionOptions
    cmd = sp.CommandStatementIngest(
        table="logs",
        table_definition_options=opts(
            if_not_exist=opts.TABLE_NOT_EXIST_OPTION_CREATE,
            if_exists=opts.TABLE_EXISTS_OPTION_APPEND,
        ),
        temporary=True,
        transaction_id=b"tx",
        options={"adbc.ingest.x": "1"},
    )
    back = unpack(pack(cmd), sp.CommandStatementIngest)
    assert back.table_definition_options.if_not_exist == sp.TableNotExistOption.CREATE
    assert back.table_definition_options.if_exists == sp.TableExistsOption.APPEND
    assert dict(back.options) == {"adbc.ingest.x": "1"}
    assert back.temporary is True
    assert back.transaction_id == b"tx"
    assert not back.HasField("schema")
    values = {
        v.name: v.number for v in opts.DESCRIPTOR.enum_types_by_name["TableExistsOption"].values
    }
    assert values == {
        "TABLE_EXISTS_OPTION_UNSPECIFIED": 0,
        "TABLE_EXISTS_OPTION_FAIL": 1,
        "TABLE_EXISTS_OPTION_APPEND": 2,
        "TABLE_EXISTS_OPTION_REPLACE": 3,
    }
    assert [m.value for m in sp.TableExistsOption] == [0, 1, 2, 3]
    assert [m.value for m in sp.TableNotExistOption] == [0, 1, 2]
    assert sp.ActionEndTransactionRequest.END_TRANSACTION_ROLLBACK == 2
    assert sp.ActionCancelQueryResult.CANCEL_RESULT_NOT_CANCELLABLE == 3


# Wire bytes written out by hand from the protobuf encoding rules (tag = number << 3 | type).
_TYPE_URL_TABLES = b"type.googleapis.com/arrow.flight.protocol.sql.CommandGetTables"


def test_wire_bytes_of_get_tables_with_include_schema() -> None:
    # field 5 (include_schema), varint: tag 0x28, value 1.
    assert sp.CommandGetTables(include_schema=True).SerializeToString() == b"\x28\x01"
    assert len(_TYPE_URL_TABLES) == 0x3E
    # Any: field 1 type_url (0x0a, len 62), field 2 value (0x12, len 2).
    assert pack(sp.CommandGetTables(include_schema=True)) == (
        b"\x0a\x3e" + _TYPE_URL_TABLES + b"\x12\x02\x28\x01"
    )


def test_hand_encoded_get_tables_parses_with_expected_fields() -> None:
    body = (
        b"\x0a\x00"  # 1 catalog = "" (present)
        b"\x1a\x04ht_%"  # 3 table_name_filter_pattern
        b"\x22\x05TABLE"  # 4 table_types[0]
        b"\x22\x04VIEW"  # 4 table_types[1]
        b"\x28\x01"  # 5 include_schema = true
    )
    data = b"\x0a\x3e" + _TYPE_URL_TABLES + b"\x12" + bytes([len(body)]) + body
    cmd = unpack(data, sp.CommandGetTables)
    assert cmd.HasField("catalog") and cmd.catalog == ""
    assert not cmd.HasField("db_schema_filter_pattern")
    assert cmd.table_name_filter_pattern == "ht_%"
    assert list(cmd.table_types) == ["TABLE", "VIEW"]
    assert cmd.include_schema is True


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (sp.CommandStatementQuery(query="SELECT 1"), b"\x0a\x08SELECT 1"),
        (sp.CommandStatementQuery(query="q", transaction_id=b""), b"\x0a\x01q\x12\x00"),
        # repeated uint32 is packed in proto3: one length-delimited field; 500 = f4 03.
        (sp.CommandGetSqlInfo(info=[0, 8, 500]), b"\x0a\x04\x00\x08\xf4\x03"),
        (sp.CommandGetXdbcTypeInfo(data_type=0), b"\x08\x00"),
        (sp.DoPutUpdateResult(record_count=3), b"\x08\x03"),
        (sp.DoPutUpdateResult(record_count=-1), b"\x08" + b"\xff" * 9 + b"\x01"),
        (sp.DoPutPreparedStatementResult(prepared_statement_handle=b""), b"\x0a\x00"),
        (
            sp.ActionCreatePreparedStatementResult(prepared_statement_handle=b"h", is_update=False),
            b"\x0a\x01h\x20\x00",
        ),
        (
            sp.CommandStatementIngest(
                table_definition_options=sp.CommandStatementIngest.TableDefinitionOptions(
                    if_not_exist=1, if_exists=2
                ),
                table="logs",
                options={"k": "v"},
            ),
            # 1: {1: 1, 2: 2}; 2: "logs"; 1000 (tag 8002 = c2 3e): entry {1: "k", 2: "v"}
            b"\x0a\x04\x08\x01\x10\x02\x12\x04logs\xc2\x3e\x06\x0a\x01k\x12\x01v",
        ),
        (sp.ActionEndTransactionRequest(transaction_id=b"t", action=1), b"\x0a\x01t\x10\x01"),
    ],
)
def test_wire_bytes_match_hand_encoding(message: Message, wire: bytes) -> None:
    assert message.SerializeToString() == wire
    parsed = type(message)()
    parsed.ParseFromString(wire)
    assert parsed == message


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"protobuf Any with a type_url\), got 0 bytes b''"),
        (b"SELECT * FROM http_logs", r"got 23 bytes b'SELECT \* FROM http_logs'"),
        (b"\xff\xff\xff\xff", r"expected a Flight SQL command .*got 4 bytes"),
        (b"\x0a\x05", r"expected a Flight SQL command .*got 2 bytes b'\\n\\x05'"),
        (b"x" * 100, r"got 100 bytes b'x{32}'\.\.\."),
    ],
)
def test_unpack_rejects_garbage_naming_what_it_got(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        unpack(data)


def test_unpack_rejects_foreign_and_unknown_type_urls() -> None:
    from google.protobuf import any_pb2

    foreign = any_pb2.Any(type_url="type.googleapis.com/google.protobuf.Empty").SerializeToString()
    with pytest.raises(
        ProtocolError,
        match=r"unsupported Flight SQL message type 'type.googleapis.com/google.protobuf.Empty'",
    ):
        unpack(foreign)
    unknown = any_pb2.Any(
        type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandNoSuchThing"
    ).SerializeToString()
    with pytest.raises(ProtocolError, match=r"CommandNoSuchThing"):
        unpack(unknown)


def test_unpack_rejects_a_body_that_does_not_decode() -> None:
    from google.protobuf import any_pb2

    bad = any_pb2.Any(
        type_url="type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery",
        value=b"\x0a\x10short",  # claims 16 bytes of query, has 5
    ).SerializeToString()
    with pytest.raises(ProtocolError, match=r"could not decode CommandStatementQuery from 7 bytes"):
        unpack(bad)


def test_unpack_accepts_any_type_url_prefix() -> None:
    from google.protobuf import any_pb2

    data = any_pb2.Any(
        type_url="example.com/x/arrow.flight.protocol.sql.CommandGetCatalogs"
    ).SerializeToString()
    assert type(unpack(data)) is sp.CommandGetCatalogs
    assert type(unpack(pa.py_buffer(data))) is sp.CommandGetCatalogs


def test_unpack_with_expect_rejects_other_messages() -> None:
    data = pack(sp.CommandStatementQuery(query="SELECT 1"))
    with pytest.raises(
        ProtocolError, match=r"expected TicketStatementQuery, got CommandStatementQuery"
    ):
        unpack(data, sp.TicketStatementQuery)
    with pytest.raises(
        ProtocolError,
        match=r"expected CommandGetTables or CommandGetCatalogs, got CommandStatementQuery",
    ):
        unpack(data, (sp.CommandGetTables, sp.CommandGetCatalogs))


def test_unpack_never_raises_anything_else_on_random_bytes() -> None:
    rng = random.Random(20240601)
    outcomes = {"error": 0, "message": 0}
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 64))
        try:
            message = unpack(data)
        except ProtocolError:
            outcomes["error"] += 1
        else:
            assert isinstance(message, Message)
            outcomes["message"] += 1
    assert outcomes["error"] > 1900


def test_protocol_error_is_invalid_input_and_value_error() -> None:
    assert issubclass(ProtocolError, InvalidInput)
    assert issubclass(ProtocolError, ValueError)


def test_pack_rejects_non_flight_sql_messages() -> None:
    from google.protobuf import any_pb2

    with pytest.raises(TypeError, match=r"not a Flight SQL message: Any"):
        pack(any_pb2.Any())
    with pytest.raises(TypeError, match=r"not a Flight SQL message: str"):
        pack("SELECT 1")  # type: ignore[arg-type]


def test_update_and_prepared_put_results_are_raw_messages() -> None:
    data = sp.encode_update_result(42)
    assert data == b"\x08\x2a"
    assert sp.decode_update_result(data) == 42
    assert sp.decode_update_result(sp.encode_update_result(-1)) == -1
    with pytest.raises(ProtocolError, match=r"could not decode DoPutUpdateResult from 2 bytes"):
        sp.decode_update_result(b"\x08\xff")
    put = sp.encode_put_prepared_result(b"new-handle")
    parsed = sp.DoPutPreparedStatementResult()
    parsed.ParseFromString(put)
    assert parsed.prepared_statement_handle == b"new-handle"


def test_prepared_statement_result_carries_handle_and_schemas() -> None:
    dataset = pa.schema([pa.field("level", pa.utf8()), pa.field("n", pa.int64(), nullable=False)])
    params = pa.schema([pa.field("0", pa.int64())])
    body = sp.encode_prepared_statement_result(b"handle", dataset, params, is_update=False)
    result = unpack(body, sp.ActionCreatePreparedStatementResult)
    assert result.prepared_statement_handle == b"handle"
    assert pa.ipc.read_schema(pa.py_buffer(result.dataset_schema)).equals(dataset)
    assert pa.ipc.read_schema(pa.py_buffer(result.parameter_schema)).equals(params)
    assert result.HasField("is_update") and result.is_update is False
    bare = unpack(sp.encode_prepared_statement_result(b"h"), sp.ActionCreatePreparedStatementResult)
    assert bare.dataset_schema == b"" and bare.parameter_schema == b""
    assert not bare.HasField("is_update")


# --- fixed schemas ------------------------------------------------------------------------

# Transcribed independently from the spec comments and arrow-go's schema_ref.
_s, _nn = pa.utf8(), False
SPEC_SCHEMAS = {
    "GET_CATALOGS_SCHEMA": pa.schema([pa.field("catalog_name", _s, _nn)]),
    "GET_DB_SCHEMAS_SCHEMA": pa.schema(
        [pa.field("catalog_name", _s), pa.field("db_schema_name", _s, _nn)]
    ),
    "GET_TABLES_SCHEMA": pa.schema(
        [
            pa.field("catalog_name", _s),
            pa.field("db_schema_name", _s),
            pa.field("table_name", _s, _nn),
            pa.field("table_type", _s, _nn),
        ]
    ),
    "GET_TABLES_SCHEMA_WITH_SCHEMA": pa.schema(
        [
            pa.field("catalog_name", _s),
            pa.field("db_schema_name", _s),
            pa.field("table_name", _s, _nn),
            pa.field("table_type", _s, _nn),
            pa.field("table_schema", pa.binary(), _nn),
        ]
    ),
    "GET_TABLE_TYPES_SCHEMA": pa.schema([pa.field("table_type", _s, _nn)]),
    "GET_SQL_INFO_SCHEMA": pa.schema(
        [
            pa.field("info_name", pa.uint32(), _nn),
            pa.field(
                "value",
                pa.dense_union(
                    [
                        pa.field("string_value", _s, _nn),
                        pa.field("bool_value", pa.bool_(), _nn),
                        pa.field("bigint_value", pa.int64(), _nn),
                        pa.field("int32_bitmask", pa.int32(), _nn),
                        pa.field("string_list", pa.list_(pa.field("item", _s)), _nn),
                        pa.field(
                            "int32_to_int32_list_map",
                            pa.map_(
                                pa.field("key", pa.int32(), _nn),
                                pa.field("value", pa.list_(pa.field("item", pa.int32()))),
                            ),
                            _nn,
                        ),
                    ],
                    type_codes=[0, 1, 2, 3, 4, 5],
                ),
                _nn,
            ),
        ]
    ),
    "GET_PRIMARY_KEYS_SCHEMA": pa.schema(
        [
            pa.field("catalog_name", _s),
            pa.field("db_schema_name", _s),
            pa.field("table_name", _s, _nn),
            pa.field("column_name", _s, _nn),
            pa.field("key_sequence", pa.int32(), _nn),
            pa.field("key_name", _s),
        ]
    ),
    "GET_XDBC_TYPE_INFO_SCHEMA": pa.schema(
        [
            pa.field("type_name", _s, _nn),
            pa.field("data_type", pa.int32(), _nn),
            pa.field("column_size", pa.int32()),
            pa.field("literal_prefix", _s),
            pa.field("literal_suffix", _s),
            pa.field("create_params", pa.list_(pa.field("item", _s, _nn))),
            pa.field("nullable", pa.int32(), _nn),
            pa.field("case_sensitive", pa.bool_(), _nn),
            pa.field("searchable", pa.int32(), _nn),
            pa.field("unsigned_attribute", pa.bool_()),
            pa.field("fixed_prec_scale", pa.bool_(), _nn),
            pa.field("auto_increment", pa.bool_()),
            pa.field("local_type_name", _s),
            pa.field("minimum_scale", pa.int32()),
            pa.field("maximum_scale", pa.int32()),
            pa.field("sql_data_type", pa.int32(), _nn),
            pa.field("datetime_subcode", pa.int32()),
            pa.field("num_prec_radix", pa.int32()),
            pa.field("interval_precision", pa.int32()),
        ]
    ),
}
_KEYS = pa.schema(
    [
        pa.field("pk_catalog_name", _s),
        pa.field("pk_db_schema_name", _s),
        pa.field("pk_table_name", _s, _nn),
        pa.field("pk_column_name", _s, _nn),
        pa.field("fk_catalog_name", _s),
        pa.field("fk_db_schema_name", _s),
        pa.field("fk_table_name", _s, _nn),
        pa.field("fk_column_name", _s, _nn),
        pa.field("key_sequence", pa.int32(), _nn),
        pa.field("fk_key_name", _s),
        pa.field("pk_key_name", _s),
        pa.field("update_rule", pa.uint8(), _nn),
        pa.field("delete_rule", pa.uint8(), _nn),
    ]
)
SPEC_SCHEMAS |= {
    "GET_EXPORTED_KEYS_SCHEMA": _KEYS,
    "GET_IMPORTED_KEYS_SCHEMA": _KEYS,
    "GET_CROSS_REFERENCE_SCHEMA": _KEYS,
}


@pytest.mark.parametrize("name", sorted(SPEC_SCHEMAS))
def test_schema_constants_match_the_spec_exactly(name: str) -> None:
    assert_schema_exact(getattr(sp, name), SPEC_SCHEMAS[name])


def test_strict_comparison_sees_nested_nullability() -> None:
    # pyarrow's equals() ignores the nullability of union members; our helper must not.
    loose = pa.schema([pa.field("value", pa.dense_union([pa.field("a", pa.int32())]))])
    tight = pa.schema([pa.field("value", pa.dense_union([pa.field("a", pa.int32(), False)]))])
    assert _schema_shape(loose) != _schema_shape(tight)


def test_schema_constants_survive_ipc_unchanged() -> None:
    for name, schema in SPEC_SCHEMAS.items():
        back = pa.ipc.read_schema(pa.py_buffer(getattr(sp, name).serialize()))
        assert _schema_shape(back) == _schema_shape(schema), name


def test_metadata_schema_per_command() -> None:
    assert sp.metadata_schema(sp.CommandGetCatalogs()) is sp.GET_CATALOGS_SCHEMA
    assert sp.metadata_schema(sp.CommandGetTables()) is sp.GET_TABLES_SCHEMA
    assert (
        sp.metadata_schema(sp.CommandGetTables(include_schema=True))
        is sp.GET_TABLES_SCHEMA_WITH_SCHEMA
    )
    assert sp.metadata_schema(sp.CommandGetSqlInfo()) is sp.GET_SQL_INFO_SCHEMA
    assert sp.metadata_schema(sp.CommandGetCrossReference()) is sp.GET_CROSS_REFERENCE_SCHEMA
    assert sp.metadata_schema(sp.CommandStatementQuery(query="SELECT 1")) is None


# --- metadata builders --------------------------------------------------------------------


def test_catalogs_table() -> None:
    table = sp.catalogs_table(["b", "arrowlog", "b"])
    assert_schema_exact(table.schema, sp.GET_CATALOGS_SCHEMA)
    assert table.column("catalog_name").to_pylist() == ["arrowlog", "b"]
    assert sp.catalogs_table([]).num_rows == 0


def test_db_schemas_table() -> None:
    table = sp.db_schemas_table([("arrowlog", "main"), (None, "x"), ("arrowlog", "aux")])
    assert_schema_exact(table.schema, sp.GET_DB_SCHEMAS_SCHEMA)
    assert table.to_pylist() == [
        {"catalog_name": None, "db_schema_name": "x"},
        {"catalog_name": "arrowlog", "db_schema_name": "aux"},
        {"catalog_name": "arrowlog", "db_schema_name": "main"},
    ]


_LOGS_SCHEMA = pa.schema(
    [
        pa.field("_offset", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("msg", pa.utf8(), metadata={"ARROW:FLIGHT:SQL:TYPE_NAME": "VARCHAR"}),
    ]
)
_ROWS = [
    TableRow("arrowlog", "main", "metrics", "TABLE", pa.schema([pa.field("v", pa.float64())])),
    TableRow("arrowlog", "main", "http_logs", "TABLE", _LOGS_SCHEMA),
    TableRow(None, None, "orphan", "VIEW", pa.schema([])),
]


def test_tables_table_without_schema() -> None:
    table = sp.tables_table(_ROWS, include_schema=False)
    assert_schema_exact(table.schema, sp.GET_TABLES_SCHEMA)
    assert table.to_pylist() == [
        {
            "catalog_name": None,
            "db_schema_name": None,
            "table_name": "orphan",
            "table_type": "VIEW",
        },
        {
            "catalog_name": "arrowlog",
            "db_schema_name": "main",
            "table_name": "http_logs",
            "table_type": "TABLE",
        },
        {
            "catalog_name": "arrowlog",
            "db_schema_name": "main",
            "table_name": "metrics",
            "table_type": "TABLE",
        },
    ]


def test_tables_table_with_schema_holds_ipc_serialized_schemas() -> None:
    table = sp.tables_table([tuple(r) for r in _ROWS], include_schema=True)
    assert_schema_exact(table.schema, sp.GET_TABLES_SCHEMA_WITH_SCHEMA)
    assert len(table.to_batches()) == 1  # ADBC get_table_schema reads the first batch only
    by_name = dict(
        zip(
            table.column("table_name").to_pylist(),
            table.column("table_schema").to_pylist(),
            strict=True,
        )
    )
    logs = pa.ipc.read_schema(pa.py_buffer(by_name["http_logs"]))
    assert logs.equals(_LOGS_SCHEMA, check_metadata=True)
    assert by_name["http_logs"] == _LOGS_SCHEMA.serialize().to_pybytes()


def test_tables_table_needs_a_schema_when_included() -> None:
    with pytest.raises(ValueError, match=r"table 'x' has no Arrow schema to include"):
        sp.tables_table([TableRow("c", "s", "x", "TABLE")], include_schema=True)
    assert sp.tables_table([TableRow("c", "s", "x", "TABLE")], include_schema=False).num_rows == 1


def test_table_types_table() -> None:
    table = sp.table_types_table(["VIEW", "TABLE", "TABLE"])
    assert_schema_exact(table.schema, sp.GET_TABLE_TYPES_SCHEMA)
    assert table.column("table_type").to_pylist() == ["TABLE", "VIEW"]


def test_empty_metadata_results_still_have_the_spec_schema() -> None:
    assert_schema_exact(sp.tables_table([], True).schema, sp.GET_TABLES_SCHEMA_WITH_SCHEMA)
    assert_schema_exact(sp.db_schemas_table([]).schema, sp.GET_DB_SCHEMAS_SCHEMA)
    assert_schema_exact(sp.table_types_table([]).schema, sp.GET_TABLE_TYPES_SCHEMA)


# --- GetSqlInfo ---------------------------------------------------------------------------


def _info_rows(table: pa.Table) -> list[tuple[int, int, object]]:
    union = table.column("value").combine_chunks()
    return list(
        zip(
            table.column("info_name").to_pylist(),
            union.type_codes.to_pylist(),
            union.to_pylist(),
            strict=True,
        )
    )


@pytest.mark.parametrize(
    ("info_id", "value", "code", "expected"),
    [
        (SqlInfo.FLIGHT_SQL_SERVER_NAME, "arrowlog", 0, "arrowlog"),
        (SqlInfo.FLIGHT_SQL_SERVER_READ_ONLY, True, 1, True),
        (SqlInfo.SQL_MAX_COLUMN_NAME_LENGTH, 128, 2, 128),
        (SqlInfo.SQL_SUPPORTED_UNIONS, Bitmask(3), 3, 3),
        (SqlInfo.SQL_KEYWORDS, ["SELECT", "FROM"], 4, ["SELECT", "FROM"]),
        (SqlInfo.SQL_SUPPORTS_CONVERT, {7: [5, 19], 19: []}, 5, [(7, [5, 19]), (19, [])]),
        (10_000, Bitmask(-1), 3, -1),
        (10_001, 2**40, 2, 2**40),
    ],
)
def test_sql_info_value_kinds(info_id: int, value: object, code: int, expected: object) -> None:
    table = sp.sql_info_table({info_id: value})
    assert_schema_exact(table.schema, sp.GET_SQL_INFO_SCHEMA)
    assert _info_rows(table) == [(int(info_id), code, expected)]


def test_sql_info_spec_int32_ids_use_the_bitmask_member() -> None:
    # ADBC reads FLIGHT_SQL_SERVER_TRANSACTION only from int32_bitmask (type code 3).
    table = sp.sql_info_table(
        {
            SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION: sp.SqlSupportedTransaction.NONE,
            SqlInfo.SQL_NULL_ORDERING: sp.SqlNullOrdering.NULLS_SORTED_AT_END,
            SqlInfo.SQL_IDENTIFIER_CASE: 1,
        }
    )
    assert _info_rows(table) == [(8, 3, 0), (503, 3, 1), (507, 3, 3)]


def test_sql_info_filters_and_orders_by_request() -> None:
    values = {0: "arrowlog", 1: "0.1", 3: True, 508: ["SELECT"]}
    table = sp.sql_info_table(values, [508, 0, 9999, 508, 3])
    assert [row[0] for row in _info_rows(table)] == [508, 0, 3]
    everything = sp.sql_info_table(values, None)
    assert [row[0] for row in _info_rows(everything)] == [0, 1, 3, 508]
    assert _info_rows(sp.sql_info_table(values, [])) == _info_rows(everything)
    assert sp.sql_info_table(values, [9999]).num_rows == 0


def test_sql_info_always_has_all_six_union_children() -> None:
    union = sp.sql_info_table({8: 0}).column("value").chunk(0)
    assert union.type.num_fields == 6
    assert [union.field(i).type for i in range(6)] == [f.type for f in sp.SQL_INFO_VALUE_TYPE]
    assert union.field(3).to_pylist() == [0]


def test_sql_info_survives_ipc_with_exact_types() -> None:
    table = sp.sql_info_table(
        {0: "a", 3: False, 541: 5, 522: Bitmask(1), 508: ["x"], 517: {1: [2]}}
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    back = pa.ipc.open_stream(sink.getvalue()).read_all()
    assert _schema_shape(back.schema) == _schema_shape(sp.GET_SQL_INFO_SCHEMA)
    assert _info_rows(back) == _info_rows(table)


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        ({0: None}, TypeError, r"SqlInfo 0: cannot send a NoneType"),
        ({0: 1.5}, TypeError, r"SqlInfo 0: cannot send a float"),
        ({508: ["a", 1]}, TypeError, r"SqlInfo 508: cannot send a list"),
        ({517: {1: ["x"]}}, TypeError, r"SqlInfo 517: cannot send a dict"),
        ({522: Bitmask(2**31)}, ValueError, r"SqlInfo 522: 2147483648 does not fit in an int32"),
        ({8: 2**31}, ValueError, r"SqlInfo 8: 2147483648 does not fit in an int32"),
        ({541: 2**63}, ValueError, r"does not fit in an int64"),
        ({-1: "x"}, ValueError, r"SqlInfo id -1 is not a uint32"),
    ],
)
def test_sql_info_rejects_unsendable_values(values: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        sp.sql_info_table(values)


def test_sql_info_ids_follow_the_spec() -> None:
    assert SqlInfo.FLIGHT_SQL_SERVER_NAME == 0
    assert SqlInfo.FLIGHT_SQL_SERVER_SQL == 4
    assert SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION == 8
    assert SqlInfo.FLIGHT_SQL_SERVER_CANCEL == 9
    assert SqlInfo.FLIGHT_SQL_SERVER_BULK_INGESTION == 10
    assert SqlInfo.FLIGHT_SQL_SERVER_STATEMENT_TIMEOUT == 100
    assert SqlInfo.FLIGHT_SQL_SERVER_TRANSACTION_TIMEOUT == 101
    assert SqlInfo.SQL_DDL_CATALOG == 500
    assert SqlInfo.SQL_KEYWORDS == 508
    assert SqlInfo.SQL_SEARCH_STRING_ESCAPE == 513
    assert SqlInfo.SQL_SUPPORTS_CONVERT == 517
    assert SqlInfo.SQL_TRANSACTIONS_SUPPORTED == 563
    assert SqlInfo.SQL_STORED_FUNCTIONS_USING_CALL_SYNTAX_SUPPORTED == 576
    syntax = [m.value for m in SqlInfo if m.value >= 500]
    assert syntax == list(range(500, 577))


# --- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        (None, "anything", True),
        ("%", "", True),
        ("%", "http_logs", True),
        ("http%", "http_logs", True),
        ("%logs", "http_logs", True),
        ("%_%", "", False),
        ("_", "a", True),
        ("_", "", False),
        ("_", "ab", False),
        ("h_tp_logs", "http_logs", True),
        ("http_logs", "http_logs", True),
        ("http_logs", "HTTP_LOGS", False),  # case-sensitive
        ("http_log", "http_logs", False),  # whole-string match
        ("http\\_logs", "http_logs", True),
        ("http\\_logs", "httpXlogs", False),
        ("100\\%", "100%", True),
        ("100\\%", "1000", False),
        ("a\\\\b", "a\\b", True),
        ("ends\\", "ends\\", True),  # trailing lone escape is literal
        ("a.b", "axb", False),  # regex metacharacters are literal
        ("a.*", "a.*", True),
        ("[ab]", "a", False),
        ("%", "line\nbreak", True),
        ("%", None, True),  # a missing db_schema matches "%"
        ("_", None, False),
    ],
)
def test_like_match(pattern: str | None, value: str | None, expected: bool) -> None:
    assert like_match(pattern, value) is expected


def test_like_match_custom_or_no_escape() -> None:
    assert like_match("a!_b", "a_b", escape="!")
    assert not like_match("a!_b", "axb", escape="!")
    assert like_match("a\\_b", "a\\xb", escape=None)
    with pytest.raises(ValueError, match=r"the LIKE escape must be one character, got '!!'"):
        like_match("x", "x", escape="!!")


def test_catalog_and_table_type_matching() -> None:
    assert sp.catalog_matches(None, "arrowlog") and sp.catalog_matches(None, None)
    assert sp.catalog_matches("", None) and sp.catalog_matches("", "")
    assert not sp.catalog_matches("", "arrowlog")
    assert sp.catalog_matches("arrowlog", "arrowlog")
    assert not sp.catalog_matches("arrow%", "arrowlog")  # catalog is a name, not a pattern
    assert sp.table_type_matches([], "VIEW")
    assert sp.table_type_matches(["table"], "TABLE")
    assert not sp.table_type_matches(["VIEW"], "TABLE")


def test_filter_tables_applies_every_field_of_get_tables() -> None:
    def names(cmd: Message) -> list[str]:
        return [r.table_name for r in sp.filter_tables(_ROWS, cmd)]

    assert names(sp.CommandGetTables()) == ["metrics", "http_logs", "orphan"]
    assert names(sp.CommandGetTables(catalog="")) == ["orphan"]
    assert names(sp.CommandGetTables(catalog="arrowlog")) == ["metrics", "http_logs"]
    assert names(sp.CommandGetTables(db_schema_filter_pattern="ma%")) == ["metrics", "http_logs"]
    assert names(sp.CommandGetTables(table_name_filter_pattern="http\\_logs")) == ["http_logs"]
    assert names(sp.CommandGetTables(table_name_filter_pattern="%s")) == [
        "metrics",
        "http_logs",
    ]
    assert names(sp.CommandGetTables(table_types=["VIEW"])) == ["orphan"]
    assert names(sp.CommandGetTables(table_types=["TABLE"], table_name_filter_pattern="m%")) == [
        "metrics"
    ]


def test_filter_db_schemas() -> None:
    rows = [("arrowlog", "main"), ("arrowlog", "aux"), (None, "loose")]
    assert sp.filter_db_schemas(rows, sp.CommandGetDbSchemas()) == rows
    assert sp.filter_db_schemas(rows, sp.CommandGetDbSchemas(db_schema_filter_pattern="a_x")) == [
        ("arrowlog", "aux")
    ]
    assert sp.filter_db_schemas(rows, sp.CommandGetDbSchemas(catalog="")) == [(None, "loose")]


# --- stateless handles and tickets ---------------------------------------------------------

_PARAMS = pa.RecordBatch.from_pydict(
    {
        "0": pa.array([1, None, 3], pa.int64()),
        "1": pa.array(["a", "é", None]),
        "2": pa.array([1.5, 2.5, None]),
    }
)


@pytest.mark.parametrize("sql", ["SELECT 1", "", "SELECT 'héllo ✓' AS \"ü\"", "x" * 70_000])
def test_prepared_handle_round_trip_without_params(sql: str) -> None:
    assert sp.decode_prepared_handle(sp.encode_prepared_handle(sql)) == (sql, None)


def test_prepared_handle_round_trip_with_params() -> None:
    handle = sp.encode_prepared_handle("SELECT * FROM t WHERE a = ? AND b = ?", _PARAMS)
    sql, params = sp.decode_prepared_handle(handle)
    assert sql == "SELECT * FROM t WHERE a = ? AND b = ?"
    assert params is not None
    assert params.equals(_PARAMS, check_metadata=True)
    assert sp.decode_prepared_handle(memoryview(handle))[1].equals(_PARAMS)


def test_prepared_handle_combines_a_chunked_table_into_one_batch() -> None:
    table = pa.Table.from_batches([_PARAMS.slice(0, 1), _PARAMS.slice(1)])
    _, params = sp.decode_prepared_handle(sp.encode_prepared_handle("q", table))
    assert isinstance(params, pa.RecordBatch)
    assert params.equals(_PARAMS)
    empty = pa.Table.from_batches([], schema=_PARAMS.schema)
    _, params = sp.decode_prepared_handle(sp.encode_prepared_handle("q", empty))
    assert params is not None and params.num_rows == 0 and params.schema.equals(_PARAMS.schema)


def test_prepared_handle_rejects_non_arrow_params() -> None:
    with pytest.raises(TypeError, match=r"parameters must be a pyarrow RecordBatch, got list"):
        sp.encode_prepared_handle("q", [1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("with_params", [False, True])
def test_every_truncation_of_a_handle_is_a_protocol_error(with_params: bool) -> None:
    handle = sp.encode_prepared_handle("SELECT ?", _PARAMS if with_params else None)
    for cut in range(len(handle)):
        with pytest.raises(ProtocolError):
            sp.decode_prepared_handle(handle[:cut])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"not an arrowlog prepared statement handle: 0 bytes b''"),
        (b"SELECT 1", r"not an arrowlog prepared statement handle: 8 bytes b'SELECT 1'"),
        (b"AL", r"not an arrowlog prepared statement handle"),
        (b"AL\x02" + b"\x00" * 8, r"unsupported prepared statement handle version 2"),
        (b"AL\x01\x00\x00", r"truncated: the SQL length is missing"),
        (b"AL\x01\x00\x00\x00\x05abc", r"truncated: 5 bytes of SQL expected, 3 remain"),
        (b"AL\x01\x00\x00\x00\x01q", r"truncated: the parameters length is missing"),
        (
            b"AL\x01\x00\x00\x00\x01q\x00\x00\x00\x09abc",
            r"truncated: 9 bytes of parameters expected, 3 remain",
        ),
        (b"AL\x01\x00\x00\x00\x01q\x00\x00\x00\x00!!", r"has 2 unexpected trailing bytes"),
        (b"AL\x01\x00\x00\x00\x02\xff\xfe\x00\x00\x00\x00", r"holds SQL that is not UTF-8"),
        (b"AL\x01\x00\x00\x00\x01q\x00\x00\x00\x08garbage!", r"holds corrupt parameters"),
    ],
)
def test_bad_handles_are_protocol_errors_with_a_reason(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        sp.decode_prepared_handle(data)


def test_statement_ticket_round_trip() -> None:
    ticket = sp.encode_statement_ticket("SELECT level FROM http_logs")
    assert sp.decode_statement_ticket(ticket) == ("SELECT level FROM http_logs", None)
    message = unpack(ticket, sp.TicketStatementQuery)
    assert sp.decode_prepared_handle(message.statement_handle)[0] == "SELECT level FROM http_logs"
    sql, params = sp.decode_statement_ticket(sp.encode_statement_ticket("SELECT ?", _PARAMS))
    assert sql == "SELECT ?"
    assert params is not None and params.equals(_PARAMS)


def test_statement_ticket_rejects_other_payloads() -> None:
    with pytest.raises(ProtocolError, match=r"got 8 bytes b'SELECT 1'"):
        sp.decode_statement_ticket(b"SELECT 1")
    with pytest.raises(
        ProtocolError, match=r"expected TicketStatementQuery, got CommandStatementQuery"
    ):
        sp.decode_statement_ticket(pack(sp.CommandStatementQuery(query="SELECT 1")))
    foreign = pack(sp.TicketStatementQuery(statement_handle=b"someone else's handle"))
    with pytest.raises(ProtocolError, match=r"not an arrowlog prepared statement handle"):
        sp.decode_statement_ticket(foreign)


# --- session options (plain Flight) -----------------------------------------------------


def test_session_messages_follow_flight_proto() -> None:
    value = sp.SessionOptionValue.DESCRIPTOR
    assert value.full_name == "arrow.flight.protocol.SessionOptionValue"
    assert {f.name: (f.number, f.type) for f in value.fields} == {
        "string_value": (1, FieldDescriptor.TYPE_STRING),
        "bool_value": (2, FieldDescriptor.TYPE_BOOL),
        "int64_value": (3, FieldDescriptor.TYPE_SFIXED64),
        "double_value": (4, FieldDescriptor.TYPE_DOUBLE),
        "string_list_value": (5, FieldDescriptor.TYPE_MESSAGE),
    }
    assert [f.name for f in value.oneofs_by_name["option_value"].fields] == [
        "string_value",
        "bool_value",
        "int64_value",
        "double_value",
        "string_list_value",
    ]
    assert sp.GetSessionOptionsResult.DESCRIPTOR.fields_by_name["session_options"].number == 1
    assert sp.SetSessionOptionsResult.DESCRIPTOR.fields_by_name["errors"].number == 1
    # Not Flight SQL messages: they never travel in an Any.
    assert not set(sp.SESSION_MESSAGE_CLASSES) & set(sp.MESSAGE_CLASSES)


def test_session_options_round_trip() -> None:
    options = {
        "catalog": "arrowlog",
        "flag": True,
        "n": -(2**40),
        "x": 0.5,
        "names": ["a", "b"],
        "unset": None,
    }
    assert sp.decode_session_options(sp.encode_session_options(options)) == options
    request = sp.SetSessionOptionsRequest()
    request.session_options["schema"].string_value = "public"
    request.session_options["other"].bool_value = False
    assert sp.decode_set_session_options(request.SerializeToString()) == {
        "schema": "public",
        "other": False,
    }
    errors = sp.SetSessionOptionsResult.FromString(
        sp.encode_set_session_options_result({"other": sp.SetSessionOptionError.INVALID_NAME})
    )
    assert errors.errors["other"].value == sp.SetSessionOptionError.INVALID_NAME
    with pytest.raises(ProtocolError, match="could not decode SetSessionOptionsRequest"):
        sp.decode_set_session_options(b"\xff\xff")
