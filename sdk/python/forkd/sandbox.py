"""Sandbox: one forked child, driven through the daemon."""

from collections import namedtuple

from .client import Controller

CommandResult = namedtuple("CommandResult", "stdout stderr exit_code")
CommandResult.__doc__ = "What a command printed and its exit status (-9 after a timeout kill)."


class Commands:
    def __init__(self, sandbox):
        self._sb = sandbox

    def run(self, cmd, timeout=60, env=None, cwd=None, stdin=None):
        """Run `cmd` (a shell string, or an argv list) and return a CommandResult."""
        kw = {"argv": cmd} if isinstance(cmd, (list, tuple)) else {"cmd": cmd}
        r = self._sb.controller.exec(self._sb.id, env=env, cwd=cwd, stdin=stdin,
                                     timeout=timeout, **kw)
        return CommandResult(r.get("stdout", ""), r.get("stderr", ""), r.get("exit_code"))


class Files:
    def __init__(self, sandbox):
        self._sb = sandbox

    def write(self, path, data, mode=None):
        """Write bytes (or str, as UTF-8) to `path` in the guest; returns the byte count."""
        return self._sb.controller.write_file(self._sb.id, path, data, mode=mode).get("bytes")

    def read(self, path):
        """The bytes of `path` in the guest."""
        return self._sb.controller.read_file(self._sb.id, path)


class Sandbox:
    """A sandbox of the daemon.

        with Sandbox.create(tag="py") as sb:
            sb.eval("1 + 1")

    Sandbox(tag=...) is the same as Sandbox.create(tag=...). Leaving a `with` block
    kills the sandbox.
    """

    def __init__(self, tag=None, controller=None, info=None, **spawn_args):
        self.controller = controller or Controller()
        if info is None:
            if tag is None:
                raise ValueError("Sandbox needs a snapshot tag (or info of an existing one)")
            info = self.controller.create_sandboxes(tag, n=1, **spawn_args)[0]
        self.info = info
        self.id = info["id"]
        self.commands = Commands(self)
        self.files = Files(self)
        self._killed = False

    @classmethod
    def create(cls, tag, controller=None, **spawn_args):
        return cls(tag=tag, controller=controller, **spawn_args)

    @classmethod
    def create_many(cls, tag, n, controller=None, **spawn_args):
        """n sandboxes from one spawn request."""
        controller = controller or Controller()
        infos = controller.create_sandboxes(tag, n=n, **spawn_args)
        return [cls(controller=controller, info=i) for i in infos]

    @classmethod
    def attach(cls, sandbox_id, controller=None):
        """An existing sandbox by id."""
        controller = controller or Controller()
        return cls(controller=controller, info=controller.sandbox(sandbox_id))

    def __repr__(self):
        return "Sandbox(%s, tag=%s)" % (self.id, self.info.get("snapshot_tag"))

    def refresh(self):
        self.info = self.controller.sandbox(self.id)
        return self.info

    @property
    def state(self):
        return self.refresh()["state"]

    def ping(self):
        return self.controller.ping(self.id)

    def eval(self, code, timeout=60):
        """The repr of the value (None for statements); printed output is in eval_full()."""
        return self.eval_full(code, timeout)["result"]

    def eval_full(self, code, timeout=60):
        return self.controller.eval(self.id, code, timeout=timeout)

    def branch(self, tag=None, mode="live", wait=True):
        """Snapshot this running sandbox as it is now; returns the new snapshot's tag.

        Sandbox.create(tag=...) then starts sandboxes from it, each with this one's
        memory, files and interpreter state; this sandbox runs on unchanged."""
        return self.controller.branch(self.id, tag=tag, mode=mode, wait=wait)["tag"]

    def kill(self):
        if not self._killed:
            self.controller.delete_sandbox(self.id)
            self._killed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.kill()
        except Exception:
            if exc[0] is None:
                raise
        return False
