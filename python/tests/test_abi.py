# SPDX-License-Identifier: Apache-2.0
"""The ctypes structures in clpsa/_lib.py against the C headers: a C program compiled against
include/clpsa/*.h prints every size and field offset, which must equal the Python ones."""

import os
import shutil
import subprocess

import pytest

from clpsa import _lib

INCLUDE = os.path.join(os.path.dirname(__file__), "..", "..", "include")


def test_struct_layouts_match_headers(tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if not os.path.exists(os.path.join(INCLUDE, "clpsa", "clpsa.h")):
        pytest.skip("not run from a source tree: no include/clpsa/clpsa.h")
    assert cc, "no C compiler to check the ctypes declarations with"
    lines = ["#include <clpsa/clpsa.h>", "#include <clpsa/clpsa_workload.h>",
             "#include <stddef.h>", "#include <stdio.h>", "int main(void) {"]
    expected = []
    for cname, struct in _lib.STRUCTS.items():
        lines.append(f'    printf("{cname} %zu\\n", sizeof({cname}));')
        expected.append(f"{cname} {ctypes_sizeof(struct)}")
        for field, _ in struct._fields_:
            lines.append(f'    printf("{cname}.{field} %zu\\n", offsetof({cname}, {field}));')
            expected.append(f"{cname}.{field} {getattr(struct, field).offset}")
    lines += ["    return 0;", "}"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", INCLUDE, str(src), "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    assert [g for g in got if g] == expected


def ctypes_sizeof(struct):
    import ctypes

    return ctypes.sizeof(struct)


def test_status_names_are_the_headers():
    header = open(os.path.join(INCLUDE, "clpsa", "clpsa.h")).read() \
        if os.path.exists(os.path.join(INCLUDE, "clpsa", "clpsa.h")) else None
    if header is None:
        pytest.skip("not run from a source tree")
    from clpsa import _core

    for value, name in _core.STATUS_NAMES.items():
        assert f"X({name}, {value}," in header
    assert _core.STATUS_NAMES[0] == "CLPSA_OK" and len(_core.STATUS_NAMES) >= 14
