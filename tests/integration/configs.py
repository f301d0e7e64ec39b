"""Builds smtplb configurations for the integration tests."""


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def table(header, values):
    out = [header]
    out += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    return "\n".join(out) + "\n\n"


def balancer(port, backends, pool_options=None, listener_options=None, extra_pools=(), routes=(),
             extra_listeners=(), server_options=None):
    """backends: list of (name, port) or (name, port, {options}).

    The admin API is off unless server_options asks for it: tests run in
    parallel and the default port would collide. Client names are looked up
    only when the test gives its own DNS server (server_options'
    dns_servers): tests do not depend on the machine's resolver."""
    server = {"hostname": "lb.test", "state_dir": "@STATE@", "tracking_log": "@TRACKING@",
              "admin": ""}
    server.update(server_options or {})
    text = table("[server]", server)
    listener = {"name": "internet", "bind": f"127.0.0.1:{port}", "role": "inbound",
                "accepted_domains": ["example.net"], "pool": "hubs"}
    if "dns_servers" not in (server_options or {}):
        listener["resolve_client_names"] = False
    listener.update(listener_options or {})
    text += table("[[listener]]", listener)
    for extra in extra_listeners:
        text += table("[[listener]]", extra)
    pool = {"name": "hubs"}
    pool.update(pool_options or {})
    text += table("[[pool]]", pool)
    for b in backends:
        values = {"name": b[0], "address": f"127.0.0.1:{b[1]}"}
        if len(b) > 2:
            values.update(b[2])
        text += table("[[pool.backend]]", values)
    for name, members in extra_pools:
        text += table("[[pool]]", {"name": name})
        for b in members:
            text += table("[[pool.backend]]", {"name": b[0], "address": f"127.0.0.1:{b[1]}"})
    for r in routes:
        text += table("[[route]]", r)
    return text
