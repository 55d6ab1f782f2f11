"""`optrollup devnet`: anvil + contracts + sequencer node + oracle feed + batch poster + reference
liquidator on loopback.

First run: deploys MockUSDC, Rollup and Bridge on a fresh anvil, lists a default set of ETH
options at genesis, funds the dev accounts through the real path (mint on L1, deposit through
the Bridge, credited by the node after confirmations). Later runs resume from the data dir
(anvil's --state, the node's LevelDB). Ctrl-C stops every child. Dev keys only. While it runs,
the lister (`sequencer.lister`) lists new weekly expiries as old ones expire, signed by the
operator key, and the oracle feed covers every listed expiry.

Children die with the supervisor even when it is killed hard (`sequencer.procs`: PDEATHSIG on
Linux), and each has a pid file in DIR/run/; the next start stops any leftover that still runs
(so fixed ports are free again) and removes stale files. DIR/devnet.lock keeps a second
supervisor off a data dir in use. The oracle feed, the lister and the poster's cron loop are
threads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from eth_account import Account

from cext import keccak256, to_checksum
from sequencer import irqkick, procs
from sequencer.core.chainspec import Genesis
from sequencer.core.config import CoreConfig, OracleParams
from sequencer.core.instruments import make_instrument
from sequencer.errors import InvalidRequest
from sequencer.feeder import Feeder, parse_move, request_shock
from sequencer.l1.statekeeper import L1StateKeeper
from sequencer.l1 import Anvil, Deployment, L1Client, L1Error, deploy
from sequencer.demomarket import DemoMarket
from sequencer.lister import Lister, expiries, instrument_name
from sequencer.node.config import L1Settings, NodeConfig

log = logging.getLogger("optrollup.devnet")

L2_CHAIN_ID = 412346
SPOT_USD = 3000
STRIKES = (2600, 2800, 3000, 3200, 3400)
FUND_USDC = 100_000
# the devnet's batch jobs (poster runs, the demo market's thread, the liquidator) run this much
# nicer than the node: on a 2-core machine their bursts otherwise delay the wake-ups of the
# node's loop and log writer by a scheduler tick (benchmarks/README.md, session 10)
BACKGROUND_NICE = 10
POSTER_PASSWORD = "devnet"  # the poster keystore's password on the devnet (dev keys only)
LIST_SECONDS = 600.0  # how often the lister checks that the rolling set of expiries is listed


def dev_key(role: str, i: int = 0) -> str:
    """Deterministic devnet-only private key for an L2 role (operator, fee, oracle i)."""
    return "0x" + keccak256(f"optrollup devnet {role} {i}".encode()).hex()


def default_genesis(now: int, oracles: list[str] | None = None) -> Genesis:
    """The devnet genesis; `oracles`: the oracle feed addresses (default: the dev oracle keys')."""
    acct = lambda k: bytes.fromhex(Account.from_key(k).address[2:])  # noqa: E731
    oracle_keys = (tuple(bytes.fromhex(a[2:]) for a in oracles) if oracles is not None else
                   tuple(acct(dev_key("oracle", i)) for i in range(3)))
    config = CoreConfig(
        chain_id=L2_CHAIN_ID, verifying_contract=b"\0" * 20, operator=acct(dev_key("operator")),
        fee_account=acct(dev_key("fee")),
        oracle=OracleParams(keys=oracle_keys, quorum=2, max_age=60))
    instruments = tuple(make_instrument(instrument_name(e, k, c))
                        for e in expiries(now) for k in STRIKES for c in (True, False))
    return Genesis(config, now, instruments)


@dataclass
class DevnetFiles:
    root: Path

    @property
    def deployment(self) -> Path:
        return self.root / "deployment.json"

    @property
    def node_config(self) -> Path:
        return self.root / "node.json"

    @property
    def keys(self) -> Path:
        return self.root / "devnet-keys.json"

    @property
    def poster_keystore(self) -> Path:
        return self.root / "poster-keystore.json"

    @property
    def password(self) -> Path:
        return self.root / "poster-password.txt"

    @property
    def lock(self) -> Path:
        return self.root / "devnet.lock"

    def pid_file(self, child: str) -> Path:
        """DIR/run/<child>.pid for child in CHILDREN."""
        return self.root / "run" / f"{child}.pid"


#: the supervised processes, in the order a cleanup stops leftovers (anvil last: it dumps state)
MAX_CHANNEL_SERVICES = 4
CHILDREN = (*(f"channels{i}" for i in range(MAX_CHANNEL_SERVICES)), "liquidator", "poster", "node",
            "anvil")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def faucet(client: L1Client, dep: Deployment, account, usdc: int) -> None:  # noqa: ANN001
    """Mint `usdc` (whole USDC) of mock collateral on L1 and deposit it through the Bridge."""
    amount = usdc * 10**6
    token, bridge = dep.token_contract(client), dep.bridge_contract(client)
    token.transact("mint", account.address, amount, sender=account)
    token.transact("approve", bridge.address, amount, sender=account)
    bridge.transact("deposit", amount, account.address, sender=account)


DEMO_ROLES = ("demo-maker", "demo-taker")  # dev_key roles of the demo market's two accounts


def start_demo_market(client: L1Client, dep: Deployment, funder, api: str) -> DemoMarket:  # noqa: ANN001
    """Fund the demo maker and taker through the real L1 path if their L2 accounts are empty
    (first run, or a devnet made before they existed), then start the demo market thread."""
    from optrollup_client import Client, NotFoundError

    keys = [dev_key(r) for r in DEMO_ROLES]
    for k in keys:
        acct = Account.from_key(k)
        with Client(api, private_key=k) as c:
            try:
                funded = c.account().collateral > 0
            except NotFoundError:
                funded = False
        if not funded:
            client.transact(funder, acct.address, value=10 * 10**18, context="gas for the demo market")
            faucet(client, dep, acct, FUND_USDC)
    market = DemoMarket(api, *keys, nice=BACKGROUND_NICE)
    market.start()
    return market


def dev_keystore(key: bytes) -> str:
    """A devnet keystore (JSON) of a public dev key under the devnet password, scrypt N=2^14:
    the poster decrypts its keystore on every cron run, and eth-account's default 2^18 costs
    0.5 s of CPU each time for a key that protects nothing."""
    return json.dumps(Account.encrypt(key, POSTER_PASSWORD, kdf="scrypt", iterations=2**14))


def trader_keystores(files: DevnetFiles, traders: list[str]) -> list[Path]:
    """Encrypted keystores of the dev traders under DIR/keys/ (written once, devnet password), so
    the CLI is used the way it is in production: no raw key on a command line."""
    out = []
    (files.root / "keys").mkdir(exist_ok=True)
    for k in traders:
        acct = Account.from_key(k)
        path = files.root / "keys" / f"{acct.address}.json"
        if not path.exists():
            path.write_text(dev_keystore(acct.key))
        out.append(path)
    return out


def first_run(files: DevnetFiles, client: L1Client, accounts: list,  # noqa: ANN001
              hsm_keys: dict | None = None) -> Deployment:
    """Deploy and fund. With `hsm_keys` ({"poster": address, "oracles": [address, ...]}, keys in
    the devnet's SoftHSM token) those are the poster and the oracle feeds; the poster is paid
    L1 gas from the dev poster account."""
    now = int(time.time())
    genesis = default_genesis(now, None if hsm_keys is None else hsm_keys["oracles"])
    _, _, header0 = genesis.block0()
    deployer, poster, guardians = accounts[0], accounts[1], accounts[2:5]
    poster_address = poster.address if hsm_keys is None else hsm_keys["poster"]
    dep = deploy(client, deployer, poster=poster_address, guardians=sorted(a.address for a in guardians),
                 threshold=2, challenge_window=60, posting_interval=600, inclusion_delay=600 + 3600,
                 escape_delay=7 * 86400, l2_chain_id=L2_CHAIN_ID,
                 genesis_header_hash=header0.hash(), genesis_state_root=header0.state_root,
                 genesis_config=genesis.to_bytes())
    dep.save(files.deployment)
    files.password.write_text(POSTER_PASSWORD)
    if hsm_keys is None:
        files.poster_keystore.write_text(dev_keystore(poster.key))
    else:  # the HSM poster pays its own L1 gas: fund it through a real transfer
        client.transact(poster, poster_address, value=100 * 10**18, context="fund the HSM poster")
    files.keys.write_text(json.dumps({
        "warning": "devnet keys: never use them anywhere else",
        "operator": dev_key("operator"), "fee": dev_key("fee"),
        "oracles": [dev_key("oracle", i) for i in range(3)] if hsm_keys is None else [],
        "traders": ["0x" + bytes(a.key).hex() for a in accounts[5:]],
        **({} if hsm_keys is None else {"hsm": hsm_keys}),
    }, indent=2))
    for a in accounts[5:]:
        faucet(client, dep, a, FUND_USDC)
    return dep


def node_config(dep: Deployment, l1_url: str) -> NodeConfig:
    genesis = Genesis.from_bytes(dep.genesis_config, dep.l2_chain_id, bytes.fromhex(dep.rollup[2:]))
    return NodeConfig(chain_id=dep.l2_chain_id, rollup=dep.rollup, genesis=genesis,
                      l1=L1Settings(rpc=l1_url, bridge=dep.bridge, collateral_token=dep.collateral_token,
                                    chain_id=dep.l1_chain_id, deployment_block=dep.deployment_block,
                                    confirmations=1, poll_seconds=1.0, adjudicator=dep.adjudicator))


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def poster_available() -> bool:
    from importlib.util import find_spec
    return find_spec("prover.poster") is not None


class PosterLoop(threading.Thread):
    """Runs `optrollup post-batches --once` every `every` seconds, like cron would, at nice
    `nice` (a batch job). Each run dies with this thread (PDEATHSIG) and is recorded in
    `pid_file`; `close()` stops both."""

    def __init__(self, cmd: list[str], every: float, log_file: Path, pid_file: Path, *,
                 nice: int = 0) -> None:
        super().__init__(name="poster-cron", daemon=True)
        self.cmd, self.every, self.log_file, self.pid_file = cmd, every, log_file, pid_file
        self.nice = nice
        self.stop = threading.Event()
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def run(self) -> None:
        with open(self.log_file, "ab") as out:
            while True:
                with self._lock:  # close() sees either no run or this one
                    if self.stop.is_set():
                        return
                    self.proc = procs.popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                            pid_file=self.pid_file, nice=self.nice)
                self.proc.wait()
                procs.remove_pid_file(self.pid_file, self.proc.pid)
                self.stop.wait(self.every)

    def close(self, timeout: float = 15.0) -> None:
        with self._lock:
            self.stop.set()
            proc = self.proc
        if proc is not None:
            procs.stop_child(proc, timeout=timeout, pid_file=self.pid_file)
        self.join(timeout)


def _cpus(text: str) -> set[int]:
    try:
        return procs.cpu_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def devnet(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.cpus is not None:  # before any child starts: they all inherit it
        os.sched_setaffinity(0, args.cpus)
    files = DevnetFiles(Path(args.data_dir).resolve())
    files.root.mkdir(parents=True, exist_ok=True)
    logs = files.root / "logs"
    logs.mkdir(exist_ok=True)
    try:
        lock = procs.DirLock(files.lock).acquire()
    except RuntimeError as exc:
        print(f"optrollup devnet: another devnet runs on {files.root}: {exc}", file=sys.stderr)
        return 1
    for msg in procs.reap_pid_files(files.root / "run", order=CHILDREN):
        log.warning("previous devnet did not stop cleanly: %s", msg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):  # no SIGHUP on Windows
        if sig is not None:
            signal.signal(sig, lambda *_: stop.set())
    node: subprocess.Popen | None = None
    # anvil dumps its chain into RAM every 5 s; the keeper makes it durable every 30 s without
    # flooding the disk the node's log fsyncs on (sequencer.l1.statekeeper)
    l1_state = L1StateKeeper(files.root / "l1-state.json")
    anvil = Anvil(state_path=l1_state.anvil_path, state_interval=5,
                  log_path=logs / "anvil.log", port=args.l1_port, pid_file=files.pid_file("anvil"))
    feeder = poster = lister = demo = None
    liquidator: subprocess.Popen | None = None
    channel_services: list[tuple[subprocess.Popen, str, Path]] = []  # (process, URL, keystore)
    oracle_keys: list = []  # with --hsm: the oracle feeds' opened keys (closed at the end)
    try:
        fresh = not files.deployment.exists()
        hsm = devnet_hsm(files, args.hsm, fresh)  # None: dev keys in files
        l1_state.prepare()
        anvil.start()
        l1_state.start()
        client = anvil.client()
        try:
            dep = (first_run(files, client, anvil.accounts, hsm) if fresh
                   else Deployment.load(files.deployment))
            cfg = node_config(dep, anvil.url)
        except (InvalidRequest, L1Error) as exc:
            if isinstance(exc, InvalidRequest) and exc.code != "unknown_rules_version":
                raise
            raise InvalidRequest(f"{files.root} holds a devnet made by an older optrollup that this "
                                 f"version no longer runs ({exc.message}); remove that directory to "
                                 "start a new devnet", code="old_devnet") from None
        files.node_config.write_text(json.dumps(cfg.to_json(), indent=2))
        port = args.port or free_port()
        api = f"http://127.0.0.1:{port}"
        cli = [sys.executable, "-m", "sequencer.cli"]
        with open(logs / "node.log", "ab") as node_log:
            ingress = []  # --ingress-workers N: the signed writes also on a gateway port
            if args.ingress_workers > 0:
                ingress_port = args.ingress_port or free_port()
                ingress = ["--ingress-workers", str(args.ingress_workers),
                           "--ingress-port", str(ingress_port)]
            kick = ["--kick-disk-irq", args.kick_disk_irq, "--kick-interval-us", str(args.kick_interval_us)]
            node = procs.popen([*cli, "serve", "--data-dir", str(files.root / "node"),
                                "--config", str(files.node_config), "--port", str(port), *ingress, *kick],
                               stdout=node_log, stderr=subprocess.STDOUT, pid_file=files.pid_file("node"))
        wait_http(f"{api}/health", 60, node)
        order_entry = f"http://127.0.0.1:{ingress_port}" if ingress else None
        if order_entry is not None:
            wait_http(f"{order_entry}/health", 60, node)
        keys = json.loads(files.keys.read_text())
        if hsm is not None:
            from sequencer.keys import load_key
            oracle_keys = [load_key(uri) for uri in hsm["oracleUris"]]
        # new weekly expiries as old ones expire, signed by the operator key (sequencer/lister.py);
        # one round now, so a devnet resumed weeks later is tradable before the banner
        lister = Lister(api, cfg.genesis.config.domain, keys["operator"], STRIKES, interval=LIST_SECONDS)
        try:
            lister.sync()
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("listing round failed (retried in %gs): %s", LIST_SECONDS, exc)
        lister.start()
        feeder = Feeder(api, cfg.genesis.config.domain, oracle_keys or keys["oracles"], "ETH", float(SPOT_USD),
                        sorted({i.expiry for i in cfg.genesis.instruments}), interval=args.feed_seconds,
                        control=files.root,  # `optrollup feed shock` requests
                        follow_listed=True)  # vols for the expiries listed since genesis too
        feeder.start()
        if not args.no_demo_market:  # books and trades that move on the page (sequencer/demomarket.py)
            demo = start_demo_market(client, dep, anvil.accounts[0], api)
        if poster_available():
            poster_key = (["--keystore", hsm["posterUri"]] if hsm is not None else
                          ["--keystore", str(files.poster_keystore), "--password-file", str(files.password)])
            poster = PosterLoop([*cli, "post-batches", "--once", "--sequencer", api, "--l1-rpc", anvil.url,
                                 "--rollup", dep.rollup, *poster_key, "--lock-dir", str(files.root),
                                 # the node's two cores are shared: level 19 cost each run ~1 s
                                 # of CPU per 40 blocks for ~5 % less calldata (prover/batch.py)
                                 "--zstd-level", "3"],
                                args.post_seconds, logs / "poster.log", files.pid_file("poster"),
                                nice=BACKGROUND_NICE)
            poster.start()
        traders = keys["traders"]
        stores = trader_keystores(files, traders)
        if not args.no_liquidator:  # the last dev trader bids in liquidation auctions
            with open(logs / "liquidator.log", "ab") as liq_log:
                liquidator = procs.popen(
                    [*cli, "liquidator", "--sequencer", api, "--keystore", str(stores[-1]),
                     "--password-file", str(files.password), "--json"],
                    stdout=liq_log, stderr=subprocess.STDOUT, pid_file=files.pid_file("liquidator"),
                    nice=BACKGROUND_NICE)
        # the first dev accounts are channel-enabled: one state-channel service each (channels/)
        for i in range(min(args.channel_services, MAX_CHANNEL_SERVICES, len(stores) - 1)):
            ch_port = free_port()
            with open(logs / f"channels{i}.log", "ab") as ch_log:
                proc = procs.popen(
                    [*cli, "channels", "serve", "--data-dir", str(files.root / "channels" / str(i)),
                     "--keystore", str(stores[i]), "--password-file", str(files.password),
                     "--sequencer", api, "--port", str(ch_port), "--l1-rpc", anvil.url,
                     "--adjudicator", dep.adjudicator or ""],
                    stdout=ch_log, stderr=subprocess.STDOUT, pid_file=files.pid_file(f"channels{i}"))
            channel_services.append((proc, f"http://127.0.0.1:{ch_port}", stores[i]))
        for proc, url, _ in channel_services:
            wait_http(f"{url}/health", 60, proc)
        sample_ins = instrument_name(expiries(int(time.time()))[0], SPOT_USD, True)  # listed by the lister
        entry_line = (f"  orders     {order_entry}   (order entry: the signed write routes, on "
                      f"{args.ingress_workers} ingress workers; the SDK's order_url=, the CLI's "
                      f"--order-url)\n" if order_entry else "")
        order_opt = f" --order-url {order_entry}" if order_entry else ""
        print(f"""
optrollup devnet ready ({'new' if fresh else 'resumed'}; data in {files.root})
  L2 API     {api}   (OpenAPI docs: {api}/docs)
  page       {api}/   (markets, instruments, chain, accounts: served by the node)
{entry_line}  L1 RPC     {anvil.url}   (anvil, chain id {dep.l1_chain_id})
  Rollup     {dep.rollup}
  Bridge     {dep.bridge}
  USDC       {dep.collateral_token}   (mock, 6 decimals; `optrollup faucet` mints and deposits more)
  poster     {'optrollup post-batches --once every %gs (log: logs/poster.log)' % args.post_seconds if poster else 'not available in this build'}
{hsm_lines(hsm)}
  liquidator {'optrollup liquidator as the last dev account (log: logs/liquidator.log)' if liquidator else 'off (--no-liquidator)'}
  demo       {'a dev maker quotes near-the-money ladders, a dev taker crosses now and then (--no-demo-market: off)' if demo else 'off (--no-demo-market)'}
  channels   {', '.join(f'{u} (dev account {i})' for i, (_, u, _) in enumerate(channel_services)) or 'off (--channel-services 0)'}
  dev accounts (devnet keys: never use them elsewhere; {FUND_USDC} USDC deposited each on first run):""")
        for k, store in zip(traders, stores):
            print(f"    {to_checksum(bytes.fromhex(Account.from_key(k).address[2:]))}  key {k}  keystore {store}")
        print(f"""  keystore password (devnet only): {files.password}
  try:
    optrollup order place --url {api}{order_opt} --keystore {stores[0]} --password-file {files.password} --instrument {sample_ins} --side sell --price 150 --amount 0.1
    curl {api}/v1/book/{sample_ins}""", flush=True)
        if len(channel_services) >= 2:
            (_, u0, k0), (_, u1, k1) = channel_services[:2]
            pw = f"--password-file {files.password}"
            print(f"""  a state channel between dev accounts 0 and 1 (docs/channels.md):
    optrollup channels open  --service {u0} --keystore {k0} {pw} --peer {u1} --deposit 1000 --peer-deposit 1000
    optrollup channels quote --service {u1} --keystore {k1} {pw} CHANNEL_ID --line {sample_ins},140,5,160,5
    optrollup channels trade --service {u0} --keystore {k0} {pw} CHANNEL_ID --instrument {sample_ins} --side buy --price 160 --amount 1
    optrollup channels close --service {u0} --keystore {k0} {pw} CHANNEL_ID""", flush=True)
        print("  Ctrl-C stops everything; run again to resume.\n", flush=True)
        while not stop.is_set():
            if node.poll() is not None:
                raise RuntimeError(f"the node exited with code {node.returncode}; see {logs}")
            if not anvil.running:
                raise RuntimeError(f"anvil exited; see {logs}")
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for i, (proc, _, _) in enumerate(channel_services):
            procs.stop_child(proc, timeout=15, pid_file=files.pid_file(f"channels{i}"))
        if liquidator is not None:
            procs.stop_child(liquidator, timeout=15, pid_file=files.pid_file("liquidator"))
        if feeder is not None:
            feeder.stop.set()
        if lister is not None:
            lister.stop.set()
        if demo is not None:
            demo.stop.set()
        if poster is not None:
            poster.close()
        if node is not None:
            procs.stop_child(node, sig=signal.SIGINT, timeout=15, pid_file=files.pid_file("node"))
        if feeder is not None:
            feeder.join(5)
        if lister is not None:
            lister.join(5)
        for k in oracle_keys:
            k.close()
        anvil.stop()
        l1_state.close()
        lock.release()
        print("optrollup devnet stopped", flush=True)
    return 0


HSM_TOKEN = "optrollup-devnet"


def devnet_hsm(files: DevnetFiles, wanted: bool, fresh: bool) -> dict | None:
    """`--hsm`: the poster's and the oracle feeds' keys in a SoftHSM token under DIR/hsm (its
    own SOFTHSM2_CONF, random PINs in files there), generated on the first run; None for a devnet
    with dev keys. A devnet keeps the kind it was made with."""
    made = None
    if not fresh:
        try:
            made = json.loads(files.keys.read_text()).get("hsm")
        except (OSError, ValueError):
            made = None
        if wanted and made is None:
            raise InvalidRequest(f"the devnet in {files.root} was made without --hsm (its poster and oracle "
                                 "keys are dev keys); remove that directory to start one with --hsm",
                                 code="devnet_not_hsm")
        if made is None:
            return None
    elif not wanted:
        return None
    from sequencer.hsm import softhsm_dir

    d = softhsm_dir(files.root / "hsm", HSM_TOKEN, ("poster", "oracle0", "oracle1", "oracle2"))
    out = {"token": HSM_TOKEN, "conf": str(d.conf), "poster": d.keys["poster"].address,
           "oracles": [d.keys[f"oracle{i}"].address for i in range(3)],
           "posterUri": d.uri("poster"), "oracleUris": [d.uri(f"oracle{i}") for i in range(3)]}
    if made is not None and (made.get("poster"), made.get("oracles")) != (out["poster"], out["oracles"]):
        raise InvalidRequest(f"the SoftHSM token in {files.root / 'hsm'} does not hold this devnet's poster "
                             "and oracle keys", code="devnet_hsm_mismatch")
    return out


def hsm_lines(hsm: dict | None) -> str:
    """The banner's lines on where the poster and oracle keys live."""
    if hsm is None:
        return "  keys       poster and oracle feeds: dev keys (optrollup devnet --hsm keeps them in SoftHSM)"
    return (f"  keys       poster {hsm['poster']} and oracle feeds {', '.join(hsm['oracles'])} live in SoftHSM "
            f"token {hsm['token']!r}\n"
            f"             (export SOFTHSM2_CONF={hsm['conf']}; optrollup keys hsm-list --token {hsm['token']})\n"
            f"             poster key: {hsm['posterUri']}")


def faucet_command(args: argparse.Namespace) -> int:
    files = DevnetFiles(Path(args.data_dir).resolve())
    dep = Deployment.load(files.deployment)
    client = L1Client(args.l1_rpc)
    if args.keystore is not None:
        from sequencer.keys import load_key
        account = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env)
    else:
        account = Account.from_key(args.key)
    faucet(client, dep, account, args.amount)  # through the account's TxManager (sequencer.l1)
    print(f"minted and deposited {args.amount} USDC for {account.address}; the node credits it "
          "after one L1 confirmation")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = sub.add_parser("devnet", help="run a local devnet: anvil + contracts + node + oracle feed + poster")
    p.add_argument("--data-dir", default=os.environ.get("OPTROLLUP_DEVNET_DIR", ".devnet"))
    p.add_argument("--port", type=int, default=8080, help="L2 API port (0: any free port)")
    p.add_argument("--l1-port", type=int, default=8545, help="anvil port (0: any free port)")
    p.add_argument("--feed-seconds", type=float, default=5.0,
                   help="oracle feed interval (every feed is an L1-posted block tx)")
    p.add_argument("--post-seconds", type=float, default=10.0)
    p.add_argument("--no-demo-market", action="store_true",
                   help="do not run the demo market maker and taker (dev accounts quoting small "
                        "ladders near the money and crossing now and then, so the page moves)")
    p.add_argument("--no-liquidator", action="store_true",
                   help="do not run the reference liquidator (optrollup liquidator)")
    p.add_argument("--ingress-workers", type=int, default=0, metavar="N",
                   help="serve the signed write routes also from N ingress worker processes "
                        "(sequencer/ingress) on --ingress-port, printed as the order-entry URL")
    p.add_argument("--ingress-port", type=int, default=8081, help="0: any free port")
    p.add_argument("--kick-disk-irq", nargs="?", const="on", default="auto", choices=("on", "off", "auto"),
                   help="the node wakes the CPUs that take the disk's interrupts (see `optrollup "
                        "serve --help`): for VMs where a busy vCPU delays synced writes; default "
                        "auto (the node probes at start-up), alone: on")
    p.add_argument("--kick-interval-us", type=irqkick.interval_arg, default=irqkick.DEFAULT_INTERVAL_US, metavar="US",
                   help="with --kick-disk-irq (default 500)")
    p.add_argument("--cpus", type=_cpus, default=None, metavar="LIST",
                   help="run anvil, the node and every devnet process on these CPUs only (e.g. 0 "
                        "or 0-2): keeping the CPU that takes the disk's interrupts free keeps "
                        "synced writes, and so acknowledgements, fast (benchmarks/README.md)")
    p.add_argument("--hsm", action="store_true",
                   help="keep the batch poster's and the oracle feeds' keys in a SoftHSM token under "
                        "DATA_DIR/hsm (generated there on the first run; needs softhsm2): the poster and "
                        "the feeder sign through their pkcs11: URIs")
    p.add_argument("--channel-services", type=int, default=2, metavar="N",
                   help=f"run a state-channel service (optrollup channels serve) for each of the "
                        f"first N dev accounts (at most {MAX_CHANNEL_SERVICES}; default 2; 0: none)")
    p.set_defaults(func=devnet)
    fd = sub.add_parser("feed", help="devnet: steer the simulated oracle feed")
    fsub = fd.add_subparsers(dest="feed_command", required=True)
    sh = fsub.add_parser("shock", help="move the devnet's spot at once (e.g. to watch a liquidation)")
    sh.add_argument("--spot", required=True, metavar="MOVE",
                    help="+20%%, -15%% or a factor such as 1.5x")
    sh.add_argument("--data-dir", default=os.environ.get("OPTROLLUP_DEVNET_DIR", ".devnet"))
    sh.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the feeder")
    sh.set_defaults(func=feed_shock_command)
    f = sub.add_parser("faucet", help="devnet: mint mock USDC on L1 and deposit it through the Bridge")
    f.add_argument("--data-dir", default=os.environ.get("OPTROLLUP_DEVNET_DIR", ".devnet"))
    f.add_argument("--l1-rpc", required=True)
    who = f.add_mutually_exclusive_group(required=True)
    who.add_argument("--keystore", metavar="KEY", help="the L1 account's key: an encrypted JSON keystore "
                                                       "or a pkcs11: URI")
    who.add_argument("--key", metavar="HEX", help="devnet only: the L1 account's raw private key (an anvil "
                                                  "dev key; raw keys on a command line are for the devnet only)")
    f.add_argument("--password-file", metavar="FILE", help="keystore password: the first line of FILE")
    f.add_argument("--password-env", metavar="NAME",
                   help="keystore password from the environment variable NAME (default: OPTROLLUP_PASSWORD)")
    f.add_argument("--amount", type=int, default=10_000, help="whole USDC")
    f.set_defaults(func=faucet_command)


def feed_shock_command(args: argparse.Namespace) -> int:
    """`optrollup feed shock --spot +20%`: the running devnet's feeder multiplies its spot
    before its next feed (sequencer/feeder.py); prints the move, or why it did not happen."""
    try:
        factor = parse_move(args.spot)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not Path(args.data_dir, "node").is_dir():
        print(f"error: no devnet in {args.data_dir} (start one with `optrollup devnet`)", file=sys.stderr)
        return 2
    got = request_shock(args.data_dir, factor, timeout=args.timeout)
    if got is None:
        print(f"error: the devnet's feeder did not take the shock within {args.timeout:g} s "
              "(is `optrollup devnet` running on this data dir?); it will when it next runs",
              file=sys.stderr)
        return 1
    print(f"spot {got['before']:.2f} -> {got['after']:.2f} USD (x{factor:g}) over the next "
          f"{got.get('feeds', 1)} feeds (at most 9 % per feed: the oracle refuses a key far from "
          "the others); watch GET /v1/liquidations")
    return 0
