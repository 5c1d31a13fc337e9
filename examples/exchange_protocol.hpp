// SPDX-License-Identifier: MIT
// The tiny protocol of ism-exchange, the example that shows two processes on one ISM
// fabric finding each other by GID and moving data into each other's DMBs.
//
// Everything travels as ISM software events (SIGNAL_IEQ: a 32-bit code and 64-bit info)
// plus stores into the peer's DMB; there is no other channel. Events can be lost when the
// receiver's queue laps (15 entries), so HELLO is repeated until it is answered.
#pragma once

#include <cstdint>

namespace ism::exchange {

/// HELLO: info = the sender's DMB token, which only the receiver may write into.
inline constexpr uint32_t kHello = 0x49530001;
/// HELLO_ACK: info = the answering side's DMB token.
inline constexpr uint32_t kHelloAck = 0x49530002;
/// ECHO: "I moved `len` bytes to offset 0 of your DMB; send them back". info: bits 0..31
/// length, bit 32 set when the move carried the signal flag, bits 40..63 a sequence.
inline constexpr uint32_t kEcho = 0x49530003;
/// ECHOED: the bytes are back at offset 0 of the initiator's DMB. info: bits 0..31 length,
/// bit 32 the responder saw its DMB signalled since the previous ECHO, bits 40..63 the
/// sequence of the ECHO answered.
inline constexpr uint32_t kEchoed = 0x49530004;
/// BYE: the initiator is done; the responder exits.
inline constexpr uint32_t kBye = 0x49530005;

inline constexpr uint64_t kLengthMask = 0xFFFF'FFFFULL;
inline constexpr uint64_t kSignalledBit = uint64_t{1} << 32;
inline constexpr unsigned kSequenceShift = 40;

/// Size of the DMB each side registers.
inline constexpr std::size_t kDmbSize = std::size_t{1} << 20;

inline uint64_t pack(uint64_t len, bool signalled, uint64_t seq)
{
    return (len & kLengthMask) | (signalled ? kSignalledBit : 0) | (seq << kSequenceShift);
}

}  // namespace ism::exchange
