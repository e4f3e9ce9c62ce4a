"""schema_check - a small JSON Schema (draft 2020-12) validator, standard library only.

It covers the keywords docs/schema/*.json use: $ref (local #/$defs/...), type, const,
enum, required, properties, additionalProperties, propertyNames, minProperties, items,
uniqueItems, pattern, minLength, maxLength, minimum, maximum, exclusiveMaximum, oneOf,
anyOf, allOf, not,
if/then/else. Annotations (description, examples, title, $id, $schema) are ignored. A
keyword it does not know is an error, so a schema cannot silently go unchecked.

    errors = validate(schema, instance)   # [] when valid
"""

import re

ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "examples", "default",
               "$comment"}
KNOWN = ANNOTATIONS | {
    "$ref", "type", "const", "enum", "required", "properties", "additionalProperties",
    "propertyNames", "minProperties", "items", "uniqueItems", "pattern", "minLength",
    "maxLength", "minimum", "maximum", "exclusiveMaximum", "oneOf", "anyOf", "allOf", "not", "if", "then",
    "else"}


def _type_ok(t, x):
    if t == "null":
        return x is None
    if t == "boolean":
        return isinstance(x, bool)
    if t == "integer":
        return (isinstance(x, int) and not isinstance(x, bool)) or \
            (isinstance(x, float) and x.is_integer())
    if t == "number":
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if t == "string":
        return isinstance(x, str)
    if t == "array":
        return isinstance(x, list)
    if t == "object":
        return isinstance(x, dict)
    raise ValueError("unknown type %s" % t)


def _same(a, b):
    # JSON equality: 1 and 1.0 are equal, true and 1 are not.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def validate(schema, x, root=None, path="$"):
    root = schema if root is None else root
    if schema is True:
        return []
    if schema is False:
        return ["%s: not allowed" % path]
    unknown = set(schema) - KNOWN
    if unknown:
        raise ValueError("schema keywords not supported: %s" % ", ".join(sorted(unknown)))
    errs = []
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError("only local $ref supported: %s" % ref)
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        errs += validate(target, x, root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_type_ok(t, x) for t in types):
            return errs + ["%s: %r is not of type %s" % (path, x, "/".join(types))]
    if "const" in schema and not _same(schema["const"], x):
        errs.append("%s: %r is not %r" % (path, x, schema["const"]))
    if "enum" in schema and not any(_same(e, x) for e in schema["enum"]):
        errs.append("%s: %r is not one of %r" % (path, x, schema["enum"]))
    if isinstance(x, str):
        if "pattern" in schema and not re.search(schema["pattern"], x):
            errs.append("%s: %r does not match %s" % (path, x, schema["pattern"]))
        if "minLength" in schema and len(x) < schema["minLength"]:
            errs.append("%s: shorter than %d" % (path, schema["minLength"]))
        if "maxLength" in schema and len(x) > schema["maxLength"]:
            errs.append("%s: longer than %d" % (path, schema["maxLength"]))
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        if "minimum" in schema and x < schema["minimum"]:
            errs.append("%s: %r < %r" % (path, x, schema["minimum"]))
        if "maximum" in schema and x > schema["maximum"]:
            errs.append("%s: %r > %r" % (path, x, schema["maximum"]))
        if "exclusiveMaximum" in schema and x >= schema["exclusiveMaximum"]:
            errs.append("%s: %r >= %r" % (path, x, schema["exclusiveMaximum"]))
    if isinstance(x, dict):
        for k in schema.get("required", []):
            if k not in x:
                errs.append("%s: missing %s" % (path, k))
        props = schema.get("properties", {})
        for k, v in x.items():
            if k in props:
                errs += validate(props[k], v, root, "%s.%s" % (path, k))
            elif "additionalProperties" in schema:
                errs += validate(schema["additionalProperties"], v, root, "%s.%s" % (path, k))
            if "propertyNames" in schema:
                errs += validate(schema["propertyNames"], k, root, "%s{%s}" % (path, k))
        if "minProperties" in schema and len(x) < schema["minProperties"]:
            errs.append("%s: fewer than %d properties" % (path, schema["minProperties"]))
    if isinstance(x, list):
        if "items" in schema:
            for i, v in enumerate(x):
                errs += validate(schema["items"], v, root, "%s[%d]" % (path, i))
        if schema.get("uniqueItems"):
            for i in range(len(x)):
                for j in range(i + 1, len(x)):
                    if _same(x[i], x[j]):
                        errs.append("%s: items %d and %d are equal" % (path, i, j))
    for sub in schema.get("allOf", []):
        errs += validate(sub, x, root, path)
    if "anyOf" in schema and not any(not validate(s, x, root, path) for s in schema["anyOf"]):
        errs.append("%s: matches none of anyOf" % path)
    if "oneOf" in schema:
        n = sum(1 for s in schema["oneOf"] if not validate(s, x, root, path))
        if n != 1:
            errs.append("%s: matches %d of oneOf, not exactly one" % (path, n))
    if "not" in schema and not validate(schema["not"], x, root, path):
        errs.append("%s: matches a schema it must not" % path)
    if "if" in schema:
        branch = "then" if not validate(schema["if"], x, root, path) else "else"
        if branch in schema:
            errs += validate(schema[branch], x, root, path)
    return errs
