// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Vm: the cheatcodes these tests use, declared by hand (forge-std is not available
///        offline). Forge and halmos both serve them at the HEVM address below; the selectors
///        are those of the function signatures, so only the names and types matter here.
interface Vm {
    /// @notice A log recorded by recordLogs (forge-std's Vm.Log).
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256 timestamp) external;
    function roll(uint256 blockNumber) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function expectRevert() external;
    function expectRevert(bytes4 selector) external;
    function expectRevert(bytes calldata revertData) external;
    function assume(bool condition) external pure;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function load(address target, bytes32 slot) external view returns (bytes32);
    function store(address target, bytes32 slot, bytes32 value) external;
    function label(address account, string calldata newLabel) external;
    // forge only (the invariant handler): event capture and call mocking. recordLogs (re)starts
    // an empty record; logs of calls that reverted are recorded too.
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
    function mockCall(address callee, bytes calldata data, bytes calldata returnData) external;
    function clearMockedCalls() external;
    // assertions (revert with a readable message on failure)
    function assertTrue(bool condition, string calldata err) external pure;
    function assertEq(uint256 left, uint256 right, string calldata err) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata err) external pure;
    function assertLe(uint256 left, uint256 right, string calldata err) external pure;
    function assertGe(uint256 left, uint256 right, string calldata err) external pure;
}

/// @dev address(bytes20(uint160(uint256(keccak256("hevm cheat code")))))
Vm constant VM = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
