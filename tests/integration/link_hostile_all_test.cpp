// SPDX-License-Identifier: MIT
// The hostile peer suite, for one commit: its fixture and tests move to files of their own.
#include "hostile_peer.hpp"
