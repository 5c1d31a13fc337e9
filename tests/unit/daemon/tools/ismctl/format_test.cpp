// SPDX-License-Identifier: MIT
// What `ismctl status` prints for the block service: one line per export and import.
#include "tools/ismctl/format.hpp"

#include <gtest/gtest.h>

namespace ismd::tools {
namespace {

TEST(IsmctlFormat, BlockExportsAndImportsOneLineEach)
{
    const auto status = nlohmann::json::parse(R"({
        "gid": "0x1", "summary": "1 peer, 1 up",
        "peers": [{"name": "lpar2", "gid": "0x2", "link": "up",
                   "block": {"summary": "1 export, 1 import",
                             "exports": [{"name": "data", "path": "/srv/data.img",
                                          "size": 1073741824, "read_only": false,
                                          "in_flight": 3, "bytes_read": 2048,
                                          "bytes_written": 0, "errors": 0}],
                             "imports": [{"name": "boot", "socket": "/run/ismd/nbd/lpar2/boot.sock",
                                          "size": 536870912, "read_only": true,
                                          "connections": 2, "in_flight": 0,
                                          "bytes_read": 1048576, "bytes_written": 0,
                                          "errors": 1}]}}]})");
    const std::string text = format_status(status);
    EXPECT_NE(text.find("lpar2: block: 1 export, 1 import\n"), std::string::npos) << text;
    EXPECT_NE(text.find("export data"), std::string::npos) << text;
    EXPECT_NE(text.find("1.0 GiB rw"), std::string::npos) << text;
    EXPECT_NE(text.find("/srv/data.img"), std::string::npos) << text;
    EXPECT_NE(text.find("import boot"), std::string::npos) << text;
    EXPECT_NE(text.find("512.0 MiB ro"), std::string::npos) << text;
    EXPECT_NE(text.find("/run/ismd/nbd/lpar2/boot.sock"), std::string::npos) << text;
}

TEST(IsmctlFormat, NoBlockTableWithoutExportsOrImports)
{
    const auto status = nlohmann::json::parse(R"({
        "gid": "0x1", "summary": "1 peer, 0 up",
        "peers": [{"name": "lpar2", "gid": "0x2", "link": "down",
                   "block": {"summary": "0 exports, 0 imports", "exports": [], "imports": []}}]})");
    EXPECT_EQ(format_status(status).find("EXPORT"), std::string::npos);
}

}  // namespace
}  // namespace ismd::tools
