"""The native rules under the names @rules_proto//proto:defs.bzl exports (offline stand-in)."""

def proto_library(**kwargs):
    native.proto_library(**kwargs)
