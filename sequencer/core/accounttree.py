"""The fixed-depth indexed account tree behind `stateRoot` (docs/encoding.md).

Leaf i is the account leaf of the account with index i; unused leaves are bytes32(0), so the
root equals `cext.merkle_root` over all 2**depth leaves. Only non-empty nodes are stored, and
an update rehashes just the paths of the touched leaves: cost ∝ touched × depth, hashed one
level at a time in a single `keccak256_many` call.
"""

from __future__ import annotations

from collections.abc import Mapping

from cext import keccak256, keccak256_many

DEPTH = 32
ZERO = b"\0" * 32


def zero_hashes(depth: int) -> list[bytes]:
    """zero_hashes(d)[h] = root of an all-empty subtree of height h, for h in 0..d."""
    out = [ZERO]
    for _ in range(depth):
        out.append(keccak256(out[-1] + out[-1]))
    return out


_ZEROS = zero_hashes(DEPTH)


class AccountTree:
    """Sparse Merkle tree of fixed `depth` over 32-byte leaves indexed 0 .. 2**depth - 1."""

    def __init__(self, depth: int = DEPTH) -> None:
        if not 1 <= depth <= 64:
            raise ValueError(f"depth must be in 1..64, got {depth}")
        self.depth = depth
        self._zeros = _ZEROS if depth <= DEPTH else zero_hashes(depth)
        self._levels: list[dict[int, bytes]] = [{} for _ in range(depth + 1)]

    def update(self, leaves: Mapping[int, bytes]) -> bytes:
        """Set leaves (index -> 32-byte leaf; ZERO clears one) and return the new root."""
        level0 = self._levels[0]
        dirty = set()
        for i, leaf in leaves.items():
            if not 0 <= i < (1 << self.depth):
                raise ValueError(f"leaf index {i} out of range for depth {self.depth}")
            if len(leaf) != 32:
                raise ValueError(f"leaf {i} must be 32 bytes, got {len(leaf)}")
            if leaf == ZERO:
                level0.pop(i, None)
            else:
                level0[i] = bytes(leaf)
            dirty.add(i >> 1)
        for h in range(self.depth):
            below, above, zero = self._levels[h], self._levels[h + 1], self._zeros[h]
            parents = sorted(dirty)
            hashes = keccak256_many(
                [below.get(2 * p, zero) + below.get(2 * p + 1, zero) for p in parents])
            empty = self._zeros[h + 1]
            for p, node in zip(parents, hashes):
                if node == empty:
                    above.pop(p, None)
                else:
                    above[p] = node
            dirty = {p >> 1 for p in parents}
        return self.root()

    def root(self) -> bytes:
        return self._levels[self.depth].get(0, self._zeros[self.depth])

    def leaf(self, index: int) -> bytes:
        return self._levels[0].get(index, ZERO)

    def proof(self, index: int) -> list[bytes]:
        """`depth` sibling hashes from the leaf up, for `cext.merkle_verify(root, leaf, index, proof)`."""
        if not 0 <= index < (1 << self.depth):
            raise ValueError(f"leaf index {index} out of range for depth {self.depth}")
        return [self._levels[h].get((index >> h) ^ 1, self._zeros[h]) for h in range(self.depth)]

    def __len__(self) -> int:
        """Number of non-empty leaves."""
        return len(self._levels[0])
