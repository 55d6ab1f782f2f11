"""The sequencer node: engine + durable input log + blocks, and its configuration."""

from sequencer.node.config import L1Settings, Limits, NodeConfig
from sequencer.node.node import Core, Node

__all__ = ["Core", "L1Settings", "Limits", "Node", "NodeConfig"]
