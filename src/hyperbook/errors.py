"""Errors a reader can act on: each message says what was wrong and how to fix it."""


class BookError(Exception):
    """Base class of every error the book raises on bad input."""


class UnknownChoiceError(BookError, ValueError):
    def __init__(self, kind: str, given, valid):
        valid = sorted(valid)
        super().__init__(f"unknown {kind} {given!r}; valid {kind}s: {', '.join(map(str, valid))}")
        self.kind, self.given, self.valid = kind, given, valid


class DatasetMissingError(BookError, FileNotFoundError):
    def __init__(self, dataset: str, path, fix: str):
        super().__init__(f"dataset {dataset!r} not found: expected {path}. To get it: {fix}")


class ChecksumError(BookError):
    def __init__(self, path, expected: str, got: str, fix: str):
        super().__init__(f"checksum mismatch for {path}: expected md5 {expected}, got {got}. "
                         f"The file is corrupt or not the original; delete it and {fix}")


class NoGPUError(BookError, RuntimeError):
    def __init__(self, asked: str):
        super().__init__(f"device {asked!r} was asked for but torch sees no CUDA GPU here; "
                         "use device='auto' (CUDA when present, else CPU) or device='cpu'")


class BusyMachineError(BookError, RuntimeError):
    def __init__(self, busy: float, limit: float, command: str = "time"):
        harm = {"time": "a step time measured beside them is inflated",
                "campaign": "training beside them slows both many times over (nbval went from 3 to 27 minutes "
                            "beside one training run)"}[command]
        super().__init__(f"other processes keep {busy:.2f} CPU cores busy (limit {limit}); {harm}. Stop the other "
                         f"job (training, tests) and run `hyperbook {command}` again, or pass --allow-busy to "
                         f"{command} anyway")
