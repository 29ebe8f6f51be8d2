"""Where a run's files go: every path a run will write (--json, --lockstat,
--save-schedule, --datadir; lockstat's --plot) is tried before the run
starts, so a typo costs one line, never the run's results.

Failing deterministic schedules go, unless --save-schedule says otherwise,
to $XDG_STATE_HOME/smpvm/schedules/ (~/.local/state/smpvm/schedules/ by
default): they are the run's state, kept across runs and directories, out
of every working directory and repository, and a new name each time --
an earlier schedule is never overwritten.
"""
import json
import os
import tempfile
import time

from smpvm.errors import ConfigError, host_error_of
from smpvm.stress.findings import EXIT_FOUND, EXIT_PANIC


def schedule_dir():
    """The default place of failing schedules (a directory, with '/')."""
    base = os.environ.get("XDG_STATE_HOME") or \
        os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "smpvm", "schedules") + os.sep


def _refuse(option, path, why):
    raise ConfigError(f"{option} {path}: {why}", option, path, why)


def check_file(path, option):
    """path can be written (created or replaced): else ConfigError.  Tried
    for real: a probe file is created and removed when path is new."""
    if os.path.isdir(path):
        _refuse(option, path, "is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        _refuse(option, path, f"no directory {parent}")
    try:
        if os.path.lexists(path):
            with open(path, "a"):
                pass
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644))
            os.unlink(path)
    except OSError as e:
        _refuse(option, path, f"cannot write it ({e.strerror})")


def check_dir(path, option, create=True):
    """path is (or, with create, becomes) a directory a file can be made
    in: else ConfigError."""
    if os.path.lexists(path) and not os.path.isdir(path):
        _refuse(option, path, "is not a directory")
    try:
        if create:
            os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".smpvm-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        _refuse(option, path, f"cannot write there ({e.strerror})")


def check(opts):
    """Every path opts will write, tried now (ConfigError naming the
    option)."""
    if opts.json_path:
        check_file(opts.json_path, "--json")
    if opts.lockstat_dir:
        check_dir(opts.lockstat_dir, "--lockstat")
    if opts.datadir:
        check_dir(opts.datadir, "--datadir", create=False)
    if opts.save_schedule and opts.sched != "off":
        if opts.save_schedule.endswith(os.sep):
            check_dir(opts.save_schedule, "--save-schedule")
        else:
            check_file(opts.save_schedule, "--save-schedule")


def new_file(directory, stem, ext=".json"):
    """A path in directory that did not exist (created empty, exclusively,
    so that two runs never pick the same): stem.json, stem-2.json, ..."""
    os.makedirs(directory, exist_ok=True)
    for n in range(1, 10000):
        path = os.path.join(directory, stem + (f"-{n}" if n > 1 else "")
                            + ext)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644))
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"{directory}: no free name for {stem}{ext}")


def write(f):
    """Write the files f.options names: a failing deterministic run's
    schedule (first, so that the JSON names it), the JSON, the lockstat
    files.  A path the host refuses now (a disk that filled up during the
    run) is the run's host error; what was written goes to f.outputs."""
    from smpvm.stress import replay
    o = f.options
    writing = ""                # the option whose file is being written
    try:
        if o.save_schedule and o.sched != "off" and f.schedule and \
                f.exit in (EXIT_FOUND, EXIT_PANIC):
            path = o.save_schedule
            writing = f"--save-schedule {path}"
            if path.endswith(os.sep):
                path = new_file(path, f"seed{o.seed}-{o.sched}-"
                                + time.strftime("%Y%m%d-%H%M%S"))
            f.schedule_file = replay.save(o, f, path)
            f.outputs.append(f.schedule_file)
        if o.json_path:
            writing = f"--json {o.json_path}"
            with open(o.json_path, "w") as fp:
                json.dump(f.as_dict(), fp, indent=2, default=str)
            f.outputs.append(o.json_path)
        if o.lockstat_dir and f.lockstat:
            from smpvm.prof import lockstat
            snap, samples = f.lockstat
            writing = f"--lockstat {o.lockstat_dir}"
            lockstat.write_all(snap, samples, o.lockstat_dir)
            f.outputs.append(o.lockstat_dir + os.sep)
    except OSError as e:
        # the run is judged; only this output is lost: say which
        he = host_error_of(e)
        msg = (f"writing {writing}: " if writing else "") + (
            str(he) if he else f"cannot write {e.filename}: {e.strerror}")
        f.host_error = f.host_error or msg
    return f
