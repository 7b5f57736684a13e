"""Protobuf message classes from declarations written in Python: no ``protoc``, no generated file.

A message is declared as a :class:`Msg` of :class:`Field` rows; :func:`build_messages`
turns a tuple of them into a ``FileDescriptorProto`` (proto3 rules: synthetic oneofs for
``optional`` fields, map entry messages), loads it into a private descriptor pool and
returns the message classes by name. ``messages.py`` declares Flight SQL this way,
``session_options.py`` plain Flight's session messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

__all__ = ["Field", "Msg", "build_messages"]

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
    "bool": _FDP.TYPE_BOOL,
    "int32": _FDP.TYPE_INT32,
    "int64": _FDP.TYPE_INT64,
    "uint32": _FDP.TYPE_UINT32,
    "sfixed64": _FDP.TYPE_SFIXED64,
    "double": _FDP.TYPE_DOUBLE,
}


class Field(NamedTuple):
    """One field of a message, as in a ``.proto`` file."""

    name: str
    number: int
    kind: str  # a scalar ("string", "int64", ...), "msg:<Name>" or "enum:<Name>" (names relative to the package)
    # "", "optional" (proto3 explicit presence), "repeated", "map" (string keys) or
    # "oneof:<name>" (a member of that oneof)
    label: str = ""


class Msg(NamedTuple):
    """One message: its fields, the enums and messages nested in it."""

    name: str
    fields: tuple[Field, ...] = ()
    enums: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    nested: tuple[Msg, ...] = ()


def build_messages(file_name: str, package: str, specs: Iterable[Msg]) -> dict[str, type[Message]]:
    """The message classes of ``specs``, by short name, built in a pool of their own.

    A private pool: another library registering the same names cannot clash with ours.

    Example: ``build_messages("x.proto", "pkg", [Msg("Ping", (Field("n", 1, "int64"),))])["Ping"]``
    """
    specs = tuple(specs)
    pool = descriptor_pool.DescriptorPool()
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=file_name, package=package, syntax="proto3"
    )
    for spec in specs:
        _describe(spec, file_proto.message_type.add(), package)
    pool.AddSerializedFile(file_proto.SerializeToString())
    return {
        spec.name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{package}.{spec.name}")
        )
        for spec in specs
    }


def _describe(spec: Msg, proto: descriptor_pb2.DescriptorProto, package: str) -> None:
    """Fill ``proto`` from ``spec`` (proto3 rules: synthetic oneofs, map entry messages)."""
    proto.name = spec.name
    for enum_name, values in spec.enums:
        enum_proto = proto.enum_type.add(name=enum_name)
        for value_name, number in values:
            enum_proto.value.add(name=value_name, number=number)
    for nested in spec.nested:
        _describe(nested, proto.nested_type.add(), package)
    # Real oneofs are declared before the synthetic ones of proto3 `optional` fields.
    for field in spec.fields:
        if field.label.startswith("oneof:"):
            name = field.label.partition(":")[2]
            if name not in [o.name for o in proto.oneof_decl]:
                proto.oneof_decl.add(name=name)
    for field in spec.fields:
        fp = proto.field.add(name=field.name, number=field.number, label=_FDP.LABEL_OPTIONAL)
        if field.label == "map":
            # map<string, V> is a repeated nested "<Name>Entry" message flagged map_entry.
            entry_name = "".join(part.title() for part in field.name.split("_")) + "Entry"
            entry = proto.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, label=_FDP.LABEL_OPTIONAL, type=_FDP.TYPE_STRING)
            value = entry.field.add(name="value", number=2, label=_FDP.LABEL_OPTIONAL)
            _set_type(value, field.kind, package)
            fp.label = _FDP.LABEL_REPEATED
            fp.type = _FDP.TYPE_MESSAGE
            fp.type_name = f".{package}.{spec.name}.{entry_name}"
            continue
        _set_type(fp, field.kind, package)
        if field.label == "repeated":
            fp.label = _FDP.LABEL_REPEATED
        elif field.label.startswith("oneof:"):
            name = field.label.partition(":")[2]
            fp.oneof_index = [o.name for o in proto.oneof_decl].index(name)
        elif field.label == "optional":
            # proto3 `optional` = a synthetic one-field oneof named "_<field>".
            fp.proto3_optional = True
            fp.oneof_index = len(proto.oneof_decl)
            proto.oneof_decl.add(name=f"_{field.name}")


def _set_type(fp: descriptor_pb2.FieldDescriptorProto, kind: str, package: str) -> None:
    if kind.startswith("msg:"):
        fp.type = _FDP.TYPE_MESSAGE
        fp.type_name = f".{package}.{kind[4:]}"
    elif kind.startswith("enum:"):
        fp.type = _FDP.TYPE_ENUM
        fp.type_name = f".{package}.{kind[5:]}"
    else:
        fp.type = _SCALARS[kind]
