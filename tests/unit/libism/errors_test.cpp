// SPDX-License-Identifier: MIT
#include <gtest/gtest.h>

#include "ism/result.hpp"

namespace {

TEST(IsmErrors, CategoryNamesTheFailure)
{
    const std::error_code ec = ism::errc::not_bound_to_driver;
    EXPECT_STREQ(ec.category().name(), "ism");
    EXPECT_NE(ec.message().find("ism_vfio_pci"), std::string::npos);
}

TEST(IsmErrors, FailErrnoKeepsSystemCategory)
{
    const ism::Result<int> r = ism::fail_errno(ENOENT);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);
}

}  // namespace
