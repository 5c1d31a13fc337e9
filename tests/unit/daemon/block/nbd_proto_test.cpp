// SPDX-License-Identifier: MIT
// NBD's errors as the clients see them: the few the protocol names pass through, every
// other errno is EIO (a client must not be told an error number it cannot know).
#include "block/nbd_proto.hpp"

#include <cerrno>

#include <gtest/gtest.h>

namespace ismd::block::nbd {
namespace {

TEST(NbdProto, ErrnosTheProtocolNamesPassAndTheRestAreEio)
{
    EXPECT_EQ(from_errno(0), 0U);
    EXPECT_EQ(from_errno(EPERM), kEperm);
    EXPECT_EQ(from_errno(EROFS), kEperm);
    EXPECT_EQ(from_errno(EINVAL), kEinval);
    EXPECT_EQ(from_errno(ENOSPC), kEnospc);
    EXPECT_EQ(from_errno(EDQUOT), kEnospc);
    EXPECT_EQ(from_errno(EFBIG), kEnospc);
    EXPECT_EQ(from_errno(ENOMEM), kEnomem);
    EXPECT_EQ(from_errno(EOVERFLOW), kEoverflow);
    EXPECT_EQ(from_errno(EOPNOTSUPP), kEnotsup);
    EXPECT_EQ(from_errno(ESHUTDOWN), kEshutdown);
    EXPECT_EQ(from_errno(EIO), kEio);
    EXPECT_EQ(from_errno(EAGAIN), kEio);
    EXPECT_EQ(from_errno(EBADF), kEio);
}

}  // namespace
}  // namespace ismd::block::nbd
