// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Vm, VM} from "./Vm.sol";

/// @title TestBase: the little that forge and halmos need from a test contract, written here
///        instead of depending on forge-std (not installable offline).
/// @dev Forge finds `test*` / `invariant*` functions and calls `setUp()`; for invariant runs it
///      reads `targetContracts()` / `targetSelectors()` when they exist (same ABI as forge-std's
///      StdInvariant). Halmos runs `check_*` functions.
abstract contract TestBase {
    Vm internal constant vm = VM;

    /// @notice Selectors of one contract for the invariant fuzzer (forge-std's FuzzSelector).
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetSelectors.push(selector);
    }

    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    /// @notice Maps any `x` into [lo, hi] (uniform enough for fuzzing; keeps small values small).
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (lo == 0 && hi == type(uint256).max) return x;
        if (x >= lo && x <= hi) return x;
        return lo + (x % (hi - lo + 1));
    }
}
