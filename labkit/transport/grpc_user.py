"""The user lookup over gRPC: protobuf on the wire, HTTP/2 underneath, deadlines built in.

The messages are the ones a ``user.proto`` would declare::

    syntax = "proto3";
    package labkit.shop;
    message GetUserRequest { string id = 1; }
    message User { string id = 1; string name = 2; string email = 3; string tier = 4; }
    service UserService { rpc GetUser(GetUserRequest) returns (User); }

Instead of generating code with ``protoc`` (grpcio-tools pins runtime versions and writes
absolute imports), the descriptor is built at run time and served through grpcio's generic
handlers. The bytes on the wire are exactly those of generated code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

SERVICE = "labkit.shop.UserService"
METHOD = f"/{SERVICE}/GetUser"


@lru_cache(maxsize=1)
def messages() -> tuple[Any, Any]:
    """The ``GetUserRequest`` and ``User`` message classes."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    file = descriptor_pb2.FileDescriptorProto(
        name="labkit/shop/user.proto", package="labkit.shop", syntax="proto3"
    )
    request = file.message_type.add(name="GetUserRequest")
    request.field.add(name="id", number=1, type=string)
    user = file.message_type.add(name="User")
    for number, name in enumerate(("id", "name", "email", "tier"), start=1):
        user.field.add(name=name, number=number, type=string)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("labkit.shop.GetUserRequest")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("labkit.shop.User")),
    )


async def serve_users(users: dict[str, Any]) -> tuple[Any, int]:
    """Start a grpc.aio server for ``users`` (id -> object with id/name/email/tier) on loopback."""
    import grpc

    request_cls, user_cls = messages()

    async def get_user(request: Any, context: Any) -> Any:
        found = users.get(request.id)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no user with id {request.id!r}")
        return user_cls(id=found.id, name=found.name, email=found.email, tier=found.tier)

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "GetUser": grpc.unary_unary_rpc_method_handler(
                get_user,
                request_deserializer=request_cls.FromString,
                response_serializer=user_cls.SerializeToString,
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def user_stub(channel: Any) -> Callable[..., Any]:
    """A callable ``stub(request, timeout=...)`` for GetUser on ``channel``."""
    request_cls, user_cls = messages()
    return channel.unary_unary(
        METHOD,
        request_serializer=request_cls.SerializeToString,
        response_deserializer=user_cls.FromString,
    )
