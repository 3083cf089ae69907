"""The one YAML loader for recipes, LF files and ``KEY=VALUE`` options: safe, line-aware, and bounded.

Safe: ``yaml.SafeLoader`` underneath (no ``!!python`` tags). Line-aware: every mapping remembers the line it starts
on (as the key ``__line__``) so errors can name ``file:line``. Bounded: aliases let a few hundred bytes expand to
billions of values (a "billion laughs" document) that later copying, hashing or JSON-writing would try to build;
a document whose expanded size passes :data:`MAX_NODES` is refused before anything is built from it.
"""

from __future__ import annotations

import yaml

from thresher.errors import ConfigError

#: Values (scalars, lists and mappings, counted as if every alias were copied) one document may expand to.
MAX_NODES = 1_000_000


class LineDict(dict):
    """A mapping read from YAML that knows the line of each of its keys (``key_lines``), for ``file:line``
    errors about one value."""

    key_lines: dict = {}  # noqa: RUF012 -- replaced per instance by the loader

    def line_of(self, key: str) -> int | None:
        """The line ``key`` is on, else the line the mapping starts on."""
        return self.key_lines.get(key) or self.get("__line__")


class _Loader(yaml.SafeLoader):
    """SafeLoader that checks the expanded size of each document before constructing it."""

    lines = True

    def construct_document(self, node):
        _check_size(node, self.name)
        return super().construct_document(node)

    def construct_yaml_map(self, node):
        data = LineDict() if self.lines else {}
        yield data
        data.update(self.construct_mapping(node))
        if self.lines:
            data["__line__"] = node.start_mark.line + 1
            data.key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)


class _PlainLoader(_Loader):
    lines = False


def _check_size(root: yaml.Node, source: str) -> None:
    """Refuse a document whose values, with aliases expanded, number more than :data:`MAX_NODES` (or that refers
    to itself, which expands without end). Linear in the number of distinct nodes."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(f"{_where(source, node)}: YAML alias refers to itself (an endless value)")
        open_nodes.add(key)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise ConfigError(f"{_where(source, node)}: YAML expands to more than {MAX_NODES:,} values through "
                                  "aliases (&anchor/*alias); refused")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    try:
        size(root)
    except RecursionError:
        raise ConfigError(f"{_where(source, root)}: YAML nested too deeply") from None


def _where(source: str, node: yaml.Node) -> str:
    return f"{source}:{node.start_mark.line + 1}"


def load_yaml(text: str, source: str, lines: bool = True) -> object:
    """Parse one YAML document from ``text`` (named ``source`` in errors); ``lines``: add ``__line__`` to every
    mapping. Invalid, oversized or self-referring YAML raises :class:`ConfigError` naming ``source:line``."""
    loader = (_Loader if lines else _PlainLoader)(text)
    loader.name = source
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark and lines else source
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def parse_value(text: str, option: str) -> object:
    """A ``KEY=VALUE`` option's value as YAML (``32``, ``0.5``, ``true``, ``{a: 1}``), bounded like a file."""
    return load_yaml(text, option, lines=False)
