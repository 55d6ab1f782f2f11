// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Signatures} from "./Signatures.sol";

/// @title Adjudicator: settles disputes of optrollup state channels on L1 (design.md, "State
///        channels"). It holds no funds; it certifies which co-signed state a channel ends in.
/// @notice A channel is fixed at open by `Fixed` (the two accounts, the two keys that sign its
///         states, a nonce and the challenge period); its id is
///         `keccak256(abi.encode(l2ChainId, rollup, a, b, signerA, signerB, nonce, challengePeriod))`.
///         States are EIP-712 `ChannelState` messages in the L2 order domain
///         `{name: "optrollup", version: "1", chainId: l2ChainId, verifyingContract: rollup}`.
///
///   * `challenge(f, s, sigA, sigB)` (anyone) with a state both signers signed: with no dispute
///     open it registers `s`, final at `finalizesAt = block.timestamp + challengePeriod`; while
///     that window is open (`block.timestamp < finalizesAt`) a state with a strictly higher
///     `turnNum` replaces it (a refutation; the window is NOT extended). A state with `isFinal`
///     concludes the channel at once (cooperative exit, or a final state refuting a dispute).
///   * `conclude(f)` (anyone) once `block.timestamp >= finalizesAt`.
///   * A concluded channel never changes again. The rollup follows `Concluded` and applies the
///     full state, checked against `stateHash` (the state's EIP-712 digest).
///
/// Storage per channel: one packed slot (turnNum, finalizesAt, concluded) and the state hash.
/// The only loop is over the caller's own positions.
contract Adjudicator {
    // ------------------------------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------------------------------

    /// @notice What a channel is fixed to at open (its id commits to every field).
    struct Fixed {
        address a;
        address b;
        address signerA; // signs states for a
        address signerB; // signs states for b
        uint64 nonce;
        uint32 challengePeriod; // seconds
    }

    /// @notice One of A's positions (B holds the negative), contracts x 10^6.
    struct Position {
        string instrument;
        int256 amount;
    }

    /// @notice A channel state, field for field the EIP-712 `ChannelState`.
    struct State {
        bytes32 channelId;
        uint64 turnNum;
        uint256 balanceA;
        uint256 balanceB;
        Position[] positions; // sorted by instrument (bytewise, strictly), no zero amount
        bool isFinal;
    }

    /// @dev The registered state of a channel: slot 1 packs the three small fields.
    struct Dispute {
        uint64 turnNum;
        uint64 finalizesAt; // 0 = nothing registered
        bool concluded;
        bytes32 stateHash; // EIP-712 digest of the registered state
    }

    // ------------------------------------------------------------------------------------------
    // Constants, configuration, state
    // ------------------------------------------------------------------------------------------

    string public constant DOMAIN_NAME = "optrollup";
    string public constant DOMAIN_VERSION = "1";
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 public constant POSITION_TYPEHASH = keccak256("ChannelPosition(string instrument,int256 amount)");
    bytes32 public constant STATE_TYPEHASH = keccak256(
        "ChannelState(bytes32 channelId,uint64 turnNum,uint256 balanceA,uint256 balanceB,"
        "ChannelPosition[] positions,bool isFinal)ChannelPosition(string instrument,int256 amount)"
    );

    /// @notice The L2 chain id (the EIP-712 domain's chainId: NOT block.chainid).
    uint256 public immutable l2ChainId;
    /// @notice The L1 Rollup (the EIP-712 domain's verifyingContract).
    address public immutable rollup;
    /// @notice The L2 order domain's separator (depends on the two immutables only).
    bytes32 public immutable domainSeparator;

    mapping(bytes32 => Dispute) private _disputes;

    // ------------------------------------------------------------------------------------------
    // Events and errors
    // ------------------------------------------------------------------------------------------

    /// @notice A state was registered (or replaced a lower turn): final at `finalizesAt`.
    event ChallengeRegistered(bytes32 indexed channelId, uint64 turnNum, uint64 finalizesAt);
    /// @notice The channel ends in the state whose EIP-712 digest is `stateHash`.
    event Concluded(bytes32 indexed channelId, uint64 turnNum, bytes32 stateHash);

    error ZeroAddress();
    error ChannelIdMismatch(bytes32 expected, bytes32 given);
    error PositionsNotSorted(uint256 index);
    error ZeroPositionAmount(uint256 index);
    /// @dev The signature is malformed, has a high `s` or a bad `v`, or does not recover.
    error InvalidSignature(address expectedSigner);
    error WrongSigner(address expected, address recovered);
    error ChannelAlreadyConcluded(bytes32 channelId);
    error ChallengeWindowClosed(bytes32 channelId, uint64 finalizesAt);
    error TurnNotHigher(bytes32 channelId, uint64 registeredTurnNum, uint64 turnNum);
    error NoChallenge(bytes32 channelId);
    error ChallengeWindowOpen(bytes32 channelId, uint64 finalizesAt);

    /// @param l2ChainId_ the L2 chain id; @param rollup_ the L1 Rollup: together the EIP-712
    ///        domain of channel states and part of every channel id.
    constructor(uint256 l2ChainId_, address rollup_) {
        if (rollup_ == address(0)) revert ZeroAddress();
        l2ChainId = l2ChainId_;
        rollup = rollup_;
        domainSeparator = keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256(bytes(DOMAIN_NAME)), keccak256(bytes(DOMAIN_VERSION)), l2ChainId_, rollup_
            )
        );
    }

    // ------------------------------------------------------------------------------------------
    // Disputes
    // ------------------------------------------------------------------------------------------

    /// @notice Registers `s`, signed by `f.signerA` (`sigA`) and `f.signerB` (`sigB`), for the
    ///         channel `f`: a new dispute, or a refutation of the registered state by a higher
    ///         turn while its window is open; an `isFinal` state concludes the channel at once.
    function challenge(Fixed calldata f, State calldata s, bytes calldata sigA, bytes calldata sigB) external {
        bytes32 id = _channelId(f);
        if (s.channelId != id) revert ChannelIdMismatch(id, s.channelId);
        bytes32 digest = _stateDigest(s);
        _checkSigner(digest, sigA, f.signerA);
        _checkSigner(digest, sigB, f.signerB);

        Dispute storage d = _disputes[id];
        if (d.concluded) revert ChannelAlreadyConcluded(id);
        uint64 finalizesAt = d.finalizesAt;
        if (finalizesAt != 0) {
            if (block.timestamp >= finalizesAt) revert ChallengeWindowClosed(id, finalizesAt);
            if (s.turnNum <= d.turnNum) revert TurnNotHigher(id, d.turnNum, s.turnNum);
        } else {
            finalizesAt = uint64(block.timestamp) + f.challengePeriod;
        }

        if (s.isFinal) {
            _disputes[id] = Dispute(s.turnNum, uint64(block.timestamp), true, digest);
            emit Concluded(id, s.turnNum, digest);
        } else {
            _disputes[id] = Dispute(s.turnNum, finalizesAt, false, digest);
            emit ChallengeRegistered(id, s.turnNum, finalizesAt);
        }
    }

    /// @notice Concludes channel `f` with its registered state once its window has passed.
    function conclude(Fixed calldata f) external {
        bytes32 id = _channelId(f);
        Dispute storage d = _disputes[id];
        if (d.concluded) revert ChannelAlreadyConcluded(id);
        uint64 finalizesAt = d.finalizesAt;
        if (finalizesAt == 0) revert NoChallenge(id);
        if (block.timestamp < finalizesAt) revert ChallengeWindowOpen(id, finalizesAt);
        d.concluded = true;
        emit Concluded(id, d.turnNum, d.stateHash);
    }

    // ------------------------------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------------------------------

    /// @notice The id of channel `f`.
    function channelId(Fixed calldata f) external view returns (bytes32) {
        return _channelId(f);
    }

    /// @notice The EIP-712 digest of `s` (reverts if its positions are not sorted or hold a zero).
    function stateDigest(State calldata s) external view returns (bytes32) {
        return _stateDigest(s);
    }

    /// @notice The registered state of a channel (all zero when none): its turn, when its window
    ///         ends, its EIP-712 digest, and whether the channel has concluded.
    function status(bytes32 id)
        external
        view
        returns (uint64 turnNum, uint64 finalizesAt, bytes32 stateHash, bool concluded)
    {
        Dispute storage d = _disputes[id];
        return (d.turnNum, d.finalizesAt, d.stateHash, d.concluded);
    }

    // ------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------

    function _channelId(Fixed calldata f) internal view returns (bytes32) {
        return keccak256(
            abi.encode(l2ChainId, rollup, f.a, f.b, f.signerA, f.signerB, f.nonce, f.challengePeriod)
        );
    }

    function _stateDigest(State calldata s) internal view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                STATE_TYPEHASH, s.channelId, s.turnNum, s.balanceA, s.balanceB, _positionsHash(s.positions), s.isFinal
            )
        );
        return Signatures.typedDigest(domainSeparator, structHash);
    }

    /// @dev EIP-712 hash of the `ChannelPosition[]` array (keccak of the concatenated
    ///      hashStructs), checking the order (strictly ascending bytewise) and no zero amount.
    function _positionsHash(Position[] calldata ps) internal pure returns (bytes32) {
        uint256 n = ps.length;
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            Position calldata p = ps[i];
            bytes calldata name = bytes(p.instrument);
            if (p.amount == 0) revert ZeroPositionAmount(i);
            if (i != 0 && !_less(bytes(ps[i - 1].instrument), name)) revert PositionsNotSorted(i);
            hashes[i] = keccak256(abi.encode(POSITION_TYPEHASH, keccak256(name), p.amount));
        }
        return keccak256(abi.encodePacked(hashes));
    }

    /// @dev a < b in bytewise lexicographic order (a proper prefix is smaller). Compares 32-byte
    ///      words, zero padded past each end, then the lengths.
    function _less(bytes calldata a, bytes calldata b) internal pure returns (bool) {
        uint256 n = a.length < b.length ? a.length : b.length;
        for (uint256 i; i < n; i += 32) {
            bytes32 wa = bytes32(a[i:]);
            bytes32 wb = bytes32(b[i:]);
            if (wa != wb) return wa < wb;
        }
        return a.length < b.length;
    }

    function _checkSigner(bytes32 digest, bytes calldata sig, address expected) internal pure {
        address recovered = Signatures.recover(digest, sig);
        if (recovered == address(0)) revert InvalidSignature(expected);
        if (recovered != expected) revert WrongSigner(expected, recovered);
    }
}
