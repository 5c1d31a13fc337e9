// SPDX-License-Identifier: MIT
// The "block" section of a peer file (man ismd.json(5)): what this host exports to that
// peer, and how it serves the peer's exports to local NBD clients.
//
//   "block": {
//       "exports": [{"name": "data", "path": "/var/lib/ismd/data.img",
//                    "read_only": false, "description": "...", "direct": false}],
//       "import": {"enabled": true, "tcp": {"data": "127.0.0.1:10809"},
//                  "deadline_ms": 60000}
//   }
//
// The exports listed in a peer's file are its access list: an export that is not listed
// there does not exist for that peer.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config.hpp"

namespace ismd::block {

struct ExportConfig {
    std::string name;  // [A-Za-z0-9._-], 1..64: it names a socket file on the importer
    std::string path;  // absolute: a regular file or a block device
    std::string description;
    bool read_only = false;
    bool direct = false;  // O_DIRECT
};

struct ImportConfig {
    bool enabled = true;
    /// By export name: "port" (on 127.0.0.1) or "address:port", as NbdEndpoint takes it.
    std::map<std::string, std::string> tcp;
    /// How long requests wait for a lost peer before they fail.
    std::chrono::milliseconds deadline{60000};
};

struct BlockConfig {
    std::vector<ExportConfig> exports;
    ImportConfig import;
};

/// Reads and checks a peer file's "block" section.
ServiceConfigParser block_config_parser();

}  // namespace ismd::block
