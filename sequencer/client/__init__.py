"""The node's terminal client: `optrollup keys|order|account|mmp|liquidator ...` over the light
SDK `optrollup_client` (a separate distribution, client/ in this repository), plus what only the
node can give it: keystore password rules and keys in HSMs (`sequencer.keys`)."""
