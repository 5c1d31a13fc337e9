// SPDX-License-Identifier: MIT
// ScopeExit: runs a function when the scope ends, however it ends. In a coroutine that
// includes the frame being destroyed without resuming (its io_context is going away),
// which is why the control sessions and the echo check clean up through one.
//
// The function runs from a destructor: it must not throw.
#pragma once

#include <utility>

namespace ismd {

template <class F>
class [[nodiscard]] ScopeExit {
public:
    explicit ScopeExit(F f) : f_(std::move(f)) {}
    ~ScopeExit() { f_(); }
    ScopeExit(const ScopeExit&) = delete;
    ScopeExit& operator=(const ScopeExit&) = delete;

private:
    F f_;
};

}  // namespace ismd
