"""`local_tensorflow`: the pip-installed TensorFlow as a Bazel repository.

The rule asks the Python interpreter (`PYTHON_BIN_PATH`, else `python3`) for
`tf.sysconfig`: the header folder and the framework library are symlinked into
the repository, and the compile flags (`-D...`, `-std=...`) become the `copts`
of the generated `cc_library`. Nothing about the C++ standard or ABI is written
by hand, as in setup.py.
"""

_SCRIPT = """
import json, tensorflow as tf
print(json.dumps({
    "lib": tf.sysconfig.get_lib(),
    "include": tf.sysconfig.get_include(),
    "compile_flags": tf.sysconfig.get_compile_flags(),
    "link_flags": tf.sysconfig.get_link_flags(),
}))
"""

def _local_tensorflow_impl(repository_ctx):
    python = repository_ctx.os.environ.get("PYTHON_BIN_PATH", "python3")
    result = repository_ctx.execute([python, "-c", _SCRIPT], quiet = True)
    if result.return_code != 0:
        fail("local_tensorflow: could not import tensorflow with %s: %s" % (python, result.stderr))
    config = json.decode(result.stdout.strip().splitlines()[-1])
    repository_ctx.symlink(config["include"], "include")

    library = None
    for flag in config["link_flags"]:
        if flag.startswith("-l:"):
            library = flag[3:]
        elif flag.startswith("-l"):
            library = "lib%s.so" % flag[2:]
    if library == None:
        fail("local_tensorflow: no framework library in %s" % config["link_flags"])
    repository_ctx.symlink(config["lib"] + "/" + library, library)

    copts = [flag for flag in config["compile_flags"] if not flag.startswith("-I")]
    repository_ctx.file("BUILD", """
cc_library(
    name = "tensorflow_framework",
    hdrs = glob(["include/**/*.h", "include/**/*.inc", "include/**"], allow_empty = True),
    includes = ["include"],
    srcs = ["{library}"],
    copts = {copts},
    visibility = ["//visibility:public"],
)

# The flags every target that includes TensorFlow headers must compile with.
TF_COPTS = {copts}
""".format(library = library, copts = repr(copts)))
    repository_ctx.file("copts.bzl", "TF_COPTS = %s\n" % repr(copts))

local_tensorflow = repository_rule(
    implementation = _local_tensorflow_impl,
    environ = ["PYTHON_BIN_PATH"],
    local = True,
)
