"""Parse and serialize message bytes (format-spec/message.md).

Parsing here does not authenticate anything: a header returned by `parse_header` is only
well-formed; its tag, key commitment and signature are checked by the streaming layer.
"""
