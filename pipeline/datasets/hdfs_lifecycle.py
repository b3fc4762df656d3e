"""The lines of one HDFS block's life, normal or anomalous, as HDFS_v1 writes them (without headers).

A normal block follows what HDFS_v1's normal blocks show (DeepLog event numbers in brackets):
allocation [22] and a receive on each of three datanodes [5 x3] in any order; per replica
"PacketResponder terminating" then "Received block" [11 9 x3]; "addStoredBlock" per replica [26 x3],
usually after the responders and sometimes before; then, optionally, a re-replication
[25 18 5 6 16 26], reads [3], failed reads [4] (a quarter of HDFS_v1's normal blocks have them) and a
scanner verification [2]; and in most blocks the deletion [23 x3, 21 x3].

Anomalous kinds (`ANOMALY_KINDS`), each with a few variants:
- `missing_steps`: the block stops after its allocation (HDFS_v1's frequent `5 22`), or is never
  stored [no 26], or one replica never reports [11 9 26 missing once];
- `exception`: write errors [7, 10, 14, 13, 8] after the creation; the block stops there or goes on;
- `out_of_order`: the deletion comes before the write completes, or addStoredBlock precedes the
  allocation;
- `unseen_event`: a normal life plus one event no normal block has [20, 28 or 29].

Parameter anomalies (`PARAMETER_ANOMALY_KINDS`, off by default) keep a normal block's events and
their order, so only DeepLog's parameter value model can see them:
- `slow_write`: every line of the write (responders and addStoredBlock) comes 50x later than planned;
- `abnormal_size`: the block reports a size of 4 to 64 times HDFS's 64 MiB block size.
"""

from __future__ import annotations

import random

from pipeline.errors import ConfigError

ANOMALY_KINDS = ("missing_steps", "exception", "out_of_order", "unseen_event")
PARAMETER_ANOMALY_KINDS = ("slow_write", "abnormal_size")
ALL_ANOMALY_KINDS = ANOMALY_KINDS + PARAMETER_ANOMALY_KINDS
SLOW_WRITE_FACTOR = 50.0
NORMAL = "normal"
FULL_BLOCK_BYTES = 67108864  # HDFS_v1's block size: most blocks are full

# One planned line: (gap in seconds after the block's previous line, pid, level, component, content).
Step = tuple[float, int, str, str, str]

_NAMESYSTEM = "dfs.FSNamesystem"
_XCEIVER = "dfs.DataNode$DataXceiver"
_RESPONDER = "dfs.DataNode$PacketResponder"
_RECEIVER = "dfs.DataNode$BlockReceiver"


def _slower(step: Step) -> Step:
    gap, pid, level, component, content = step
    return (gap * SLOW_WRITE_FACTOR, pid, level, component, content)


class BlockPlanner:
    """Plans blocks from one seeded random source; the datanode pool and job id come from it too."""

    def __init__(self, rng: random.Random, nodes: int = 200) -> None:
        self.rng = rng
        self.nodes = [
            f"10.25{rng.randint(0, 1)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(nodes)
        ]
        self.job = f"200811092030_{rng.randint(1, 99):04d}"

    def plan(self, blk: str, serial: int, kind: str = NORMAL) -> list[Step]:
        """Every line of block `blk` in order; `kind` is `NORMAL` or one of `ALL_ANOMALY_KINDS`."""
        rng = self.rng
        replicas = rng.sample(self.nodes, 3)
        size = FULL_BLOCK_BYTES if rng.random() < 0.7 else rng.randint(1000, FULL_BLOCK_BYTES - 1)
        creation = self._creation(blk, serial, replicas)
        responders = self._responders(blk, size, replicas)
        stored = self._stored(blk, size, replicas)
        write = responders + stored if rng.random() < 0.85 else stored + responders
        later = self._after_write(blk, size, replicas)
        deletion = self._deletion(blk, replicas) if rng.random() < 0.8 else []
        if kind == NORMAL:
            return creation + write + later + deletion
        variant = rng.randrange(3)
        if kind == "missing_steps":
            if variant == 0:
                allocated = next(i for i, s in enumerate(creation) if "allocateBlock" in s[4])
                return creation[: max(allocated + 1, rng.randint(1, 3))]
            if variant == 1:
                return creation + responders + later + deletion
            lost = rng.randrange(3)
            kept = [s for i, s in enumerate(responders) if i // 2 != lost]
            return creation + kept + stored[:2] + later + deletion
        if kind == "exception":
            errors = self._exceptions(blk, replicas)
            return creation + errors if variant == 0 else creation + errors + write + later + deletion
        if kind == "out_of_order":
            if variant < 2:
                return creation + self._deletion(blk, replicas) + write + later
            allocation = [s for s in creation if "allocateBlock" in s[4]]
            receives = [s for s in creation if "allocateBlock" not in s[4]]
            return stored + receives + allocation + responders + later + deletion
        if kind == "unseen_event":
            life = creation + write + later + deletion
            at = rng.randint(len(creation), len(life))
            return [*life[:at], self._unseen(blk, size, replicas), *life[at:]]
        if kind == "slow_write":
            slowed = set(responders + stored)
            return creation + [_slower(s) if s in slowed else s for s in write] + later + deletion
        if kind == "abnormal_size":
            wrong = f"size {rng.randint(4 * FULL_BLOCK_BYTES, 64 * FULL_BLOCK_BYTES)}"
            life = creation + write + later + deletion
            return [(g, p, lv, c, text.replace(f"size {size}", wrong)) for g, p, lv, c, text in life]
        raise ConfigError(f"synthetic block: kind {kind!r} is not {NORMAL!r} or one of {ALL_ANOMALY_KINDS}")

    def _gap(self, low: float, high: float) -> float:
        return low + (high - low) * self.rng.random()

    def _path(self, serial: int) -> str:
        if self.rng.random() < 0.1:
            leaf = self.rng.choice(("jar", "split", "xml"))
            return f"/mnt/hadoop/mapred/system/job_{self.job}/job.{leaf}"
        part = serial % 1000
        return f"/user/root/rand/_temporary/_task_{self.job}_m_{part:06d}_0/part-{part:05d}"

    def _creation(self, blk: str, serial: int, replicas: list[str]) -> list[Step]:
        rng = self.rng
        lines = [(_NAMESYSTEM, f"BLOCK* NameSystem.allocateBlock: {self._path(serial)}. {blk}")]
        lines += [
            (_XCEIVER, f"Receiving block {blk} src: /{node}:{rng.randint(30000, 60999)} dest: /{node}:50010")
            for node in replicas
        ]
        rng.shuffle(lines)
        return [(self._gap(0.0, 0.6), self._pid(c), "INFO", c, text) for c, text in lines]

    def _responders(self, blk: str, size: int, replicas: list[str]) -> list[Step]:
        steps: list[Step] = []
        for index in self.rng.sample(range(len(replicas)), len(replicas)):
            pid = self._pid(_RESPONDER)
            steps.append(
                (
                    self._gap(0.1, 1.2),
                    pid,
                    "INFO",
                    _RESPONDER,
                    f"PacketResponder {index} for block {blk} terminating",
                )
            )
            steps.append(
                (
                    self._gap(0.0, 0.2),
                    pid,
                    "INFO",
                    _RESPONDER,
                    f"Received block {blk} of size {size} from /{replicas[index]}",
                )
            )
        return steps

    def _stored(self, blk: str, size: int, replicas: list[str]) -> list[Step]:
        return [
            (
                self._gap(0.0, 0.5),
                self._pid(_NAMESYSTEM),
                "INFO",
                _NAMESYSTEM,
                f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {node}:50010 is added to {blk} "
                f"size {size}",
            )
            for node in self.rng.sample(replicas, len(replicas))
        ]

    def _after_write(self, blk: str, size: int, replicas: list[str]) -> list[Step]:
        rng, steps = self.rng, []
        if rng.random() < 0.005:
            src, dst = replicas[0], rng.choice([n for n in self.nodes if n not in replicas])
            port = rng.randint(30000, 60999)
            lines = [
                (
                    _NAMESYSTEM,
                    "INFO",
                    f"BLOCK* ask {src}:50010 to replicate {blk} to datanode(s) {dst}:50010",
                ),
                (
                    "dfs.DataNode",
                    "INFO",
                    f"{src}:50010 Starting thread to transfer block {blk} to {dst}:50010",
                ),
                (_XCEIVER, "INFO", f"Receiving block {blk} src: /{src}:{port} dest: /{dst}:50010"),
                (
                    _XCEIVER,
                    "INFO",
                    f"Received block {blk} src: /{src}:{port} dest: /{dst}:50010 of size {size}",
                ),
                ("dfs.DataNode$DataTransfer", "INFO", f"{src}:50010:Transmitted block {blk} to /{dst}:50010"),
                (
                    _NAMESYSTEM,
                    "INFO",
                    f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {dst}:50010 is added to {blk} "
                    f"size {size}",
                ),
            ]
            steps += [(self._gap(0.0, 1.0), self._pid(c), level, c, text) for c, level, text in lines]
        reads: list[tuple[str, str, str]] = []
        if rng.random() < 0.25:
            reads += [
                (
                    _XCEIVER,
                    "INFO",
                    f"{rng.choice(replicas)}:50010 Served block {blk} to /{rng.choice(self.nodes)}",
                )
                for _ in range(rng.randint(1, 4))
            ]
        if rng.random() < 0.24:
            reads += [
                (
                    _XCEIVER,
                    "WARN",
                    f"{rng.choice(replicas)}:50010:Got exception while serving {blk} "
                    f"to /{rng.choice(self.nodes)}:",
                )
                for _ in range(rng.randint(1, 3))
            ]
        if rng.random() < 0.15:
            reads.append(("dfs.DataBlockScanner", "INFO", f"Verification succeeded for {blk}"))
        rng.shuffle(reads)
        return steps + [(self._gap(0.5, 5.0), self._pid(c), level, c, text) for c, level, text in reads]

    def _deletion(self, blk: str, replicas: list[str]) -> list[Step]:
        steps: list[Step] = [
            (
                self._gap(2.0, 12.0) if i == 0 else self._gap(0.0, 0.3),
                self._pid(_NAMESYSTEM),
                "INFO",
                _NAMESYSTEM,
                f"BLOCK* NameSystem.delete: {blk} is added to invalidSet of {node}:50010",
            )
            for i, node in enumerate(replicas)
        ]
        subdir = self.rng.randint(0, 63)
        steps += [
            (
                self._gap(0.2, 3.0),
                19,
                "INFO",
                "dfs.FSDataset",
                f"Deleting block {blk} file /mnt/hadoop/dfs/data/current/subdir{subdir}/{blk}",
            )
            for _ in replicas
        ]
        return steps

    def _exceptions(self, blk: str, replicas: list[str]) -> list[Step]:
        rng, steps = self.rng, []
        for _ in range(rng.randint(1, 3)):
            index = rng.randrange(len(replicas))
            component, text = rng.choice(
                (
                    (
                        _XCEIVER,
                        f"writeBlock {blk} received exception java.io.IOException: "
                        "Could not read from stream",
                    ),
                    (_RESPONDER, f"PacketResponder {blk} {index} Exception java.io.EOFException"),
                    (
                        _RECEIVER,
                        f"Exception in receiveBlock for block {blk} java.io.IOException: "
                        "Connection reset by peer",
                    ),
                    (_RECEIVER, f"Receiving empty packet for block {blk}"),
                    (_RESPONDER, f"PacketResponder {index} for block {blk} Interrupted."),
                )
            )
            steps.append((self._gap(0.2, 20.0), self._pid(component), "INFO", component, text))
        return steps

    def _unseen(self, blk: str, size: int, replicas: list[str]) -> Step:
        node = self.rng.choice(replicas)
        component, level, text = self.rng.choice(
            (
                (
                    "dfs.FSDataset",
                    "WARN",
                    f"Unexpected error trying to delete block {blk}. BlockInfo not found in volumeMap.",
                ),
                (
                    _NAMESYSTEM,
                    "INFO",
                    f"BLOCK* NameSystem.addStoredBlock: addStoredBlock request received for {blk} "
                    f"on {node}:50010 "
                    f"size {size} But it does not belong to any file.",
                ),
                ("dfs.PendingReplicationMonitor", "WARN", f"PendingReplicationMonitor timed out block {blk}"),
            )
        )
        return (self._gap(0.1, 2.0), self._pid(component), level, component, text)

    def _pid(self, component: str) -> int:
        # HDFS_v1's pid column is a thread id: low for the namesystem, higher for datanode workers.
        if component == _NAMESYSTEM:
            return self.rng.randint(19, 35)
        if component in ("dfs.FSDataset", "dfs.DataNode"):
            return 19
        if component == "dfs.DataBlockScanner":
            return 13
        return self.rng.randint(140, 760)
