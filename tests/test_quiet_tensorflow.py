"""The TensorFlow import helper drops TF's oneDNN import notice from fd 2 and keeps the rest, and
keeps matplotlib out of TensorFlow's import without keeping it out of the process.

A stand-in ``tensorflow`` package writes to file descriptor 2 the way TensorFlow's C++ logging
does and tries matplotlib the way Keras does; a stand-in ``matplotlib`` sits beside it, so the
test runs the same on every CPU and without matplotlib installed."""
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FAKE_TF = textwrap.dedent("""
    import os
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
    os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see ...\\n")
    os.write(2, b"a warning the user should see\\n")
    try:  # as Keras does for its image-gallery plots
        import matplotlib.pyplot
        SAW_PYPLOT = True
    except ImportError:
        SAW_PYPLOT = False
    if os.environ.get("FAKE_TF_FAIL"):
        raise ImportError("broken install")
    VERSION = "fake"
""")

SCRIPT = textwrap.dedent("""
    import os, sys
    if os.environ.get("PYPLOT_FIRST"):
        import matplotlib.pyplot
    from baselines_her.quiet_tensorflow import import_tensorflow
    try:
        tf = import_tensorflow()
    finally:
        print("held off:", [m for m in ("matplotlib", "matplotlib.pyplot")
                            if m in sys.modules and sys.modules[m] is None])
    assert import_tensorflow() is tf
    print(tf.VERSION, "saw pyplot" if tf.SAW_PYPLOT else "no pyplot")
    import matplotlib.pyplot as plt
    print(plt.NAME)
""")


def run(tmp_path, **env):
    pkg = tmp_path / "tensorflow"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(FAKE_TF)
    mpl = tmp_path / "matplotlib"
    mpl.mkdir(exist_ok=True)
    (mpl / "__init__.py").write_text("")
    (mpl / "pyplot.py").write_text("NAME = 'fake pyplot'\n")
    environ = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]), **env)
    return subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=environ, cwd=tmp_path)


def test_import_notices_are_dropped_and_other_output_kept(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "held off: []\nfake no pyplot\nfake pyplot\n"
    assert proc.stderr == "a warning the user should see\n"


def test_pyplot_imported_before_tensorflow_stays_visible_to_it(tmp_path):
    proc = run(tmp_path, PYPLOT_FIRST="1")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "held off: []\nfake saw pyplot\nfake pyplot\n"


def test_failed_import_replays_everything_and_raises(tmp_path):
    proc = run(tmp_path, FAKE_TF_FAIL="1")
    assert proc.returncode == 1
    assert proc.stdout == "held off: []\n"
    assert "oneDNN custom operations are on" in proc.stderr
    assert "a warning the user should see" in proc.stderr
    assert "ImportError: broken install" in proc.stderr
