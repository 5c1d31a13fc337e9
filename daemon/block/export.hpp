// SPDX-License-Identifier: MIT
// Export: what the local NBD endpoint serves, whatever is behind it (an import of a
// peer's export over the link; in tests, a local disk). The endpoint speaks NBD to its
// clients and hands each request to an Export; it never sees the link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "block/nbd_handshake.hpp"
#include "block/nbd_proto.hpp"

namespace ismd::block {

/// One NBD command as the endpoint received it, already checked against the export
/// (range, read-only, flags the export announced).
struct IoRequest {
    nbd::Cmd cmd = nbd::Cmd::read;
    uint16_t flags = 0;  // nbd::kCmdFua, kCmdNoHole, kCmdReqOne, kCmdDf
    uint64_t offset = 0;
    uint32_t length = 0;
    /// WRITE: the payload. READ: `length` bytes for the data (the endpoint allocated them
    /// from its budget; the Export fills them and gives them back in IoResult::data).
    std::vector<std::byte> data;
};

/// One base:allocation extent (nbd::kStateHole, nbd::kStateZero).
struct StatusExtent {
    uint32_t length = 0;
    uint32_t flags = 0;
};

struct IoResult {
    uint32_t error = 0;                 // an NBD error (nbd::kEio, ...); 0: success
    std::string message;                // optional detail for a structured error chunk
    std::vector<std::byte> data;        // READ: the request's buffer, filled
    std::vector<StatusExtent> extents;  // BLOCK_STATUS: from the request's offset on
};

class Export {
public:
    using Done = std::function<void(IoResult)>;
    virtual ~Export() = default;
    /// Size, transmission flags, block sizes, description: as known now.
    [[nodiscard]] virtual nbd::ExportInfo info() const = 0;
    /// Runs one request. `done` runs exactly once, on the endpoint's executor, never
    /// inline in submit(): after the request completed, failed, or waited out the
    /// export's deadline.
    virtual void submit(IoRequest request, Done done) = 0;
};

/// The exports a local NBD endpoint offers: the handshake's catalog, and the export
/// behind a chosen name.
class ExportDirectory : public nbd::Catalog {
public:
    /// The export the handshake chose by `name`; null when it went away meanwhile.
    virtual std::shared_ptr<Export> open(const std::string& name) = 0;
};

}  // namespace ismd::block
