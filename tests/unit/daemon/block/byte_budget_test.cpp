// SPDX-License-Identifier: MIT
// ByteBudget: what the NBD endpoint relies on to bound the memory clients make it hold.
#include "block/byte_budget.hpp"

#include <string>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

namespace ismd::block {
namespace {

namespace asio = boost::asio;

struct Log {
    std::vector<std::string> events;
    auto on(const std::string& name)
    {
        return [this, name](boost::system::error_code ec) {
            events.push_back(name + (ec ? ":aborted" : ""));
        };
    }
};

/// Runs what is ready, however often it ran out of work before.
void drain(asio::io_context& io)
{
    io.restart();
    io.poll();
}

TEST(ByteBudget, GrantsWhatFitsAtOnceAndRefusesMore)
{
    asio::io_context io;
    ByteBudget budget(io.get_executor(), 100);
    EXPECT_TRUE(budget.try_acquire(60));
    EXPECT_TRUE(budget.try_acquire(40));
    EXPECT_FALSE(budget.try_acquire(1));
    EXPECT_EQ(budget.in_use(), 100U);
    budget.release(50);
    EXPECT_TRUE(budget.try_acquire(50));
}

TEST(ByteBudget, CompletesNeverInsideTheCall)
{
    asio::io_context io;
    ByteBudget budget(io.get_executor(), 100);
    Log log;
    budget.async_acquire(10, log.on("a"));
    EXPECT_TRUE(log.events.empty());
    io.run();
    EXPECT_EQ(log.events, std::vector<std::string>{"a"});
    EXPECT_EQ(budget.in_use(), 10U);
}

TEST(ByteBudget, ServesWaitersInOrderSoALargeRequestIsNotStarved)
{
    asio::io_context io;
    ByteBudget budget(io.get_executor(), 100);
    ASSERT_TRUE(budget.try_acquire(90));
    Log log;
    budget.async_acquire(50, log.on("large"));
    // 5 bytes would fit, but the large request waits first: small ones queue behind it.
    EXPECT_FALSE(budget.try_acquire(5));
    budget.async_acquire(5, log.on("small"));
    drain(io);
    EXPECT_TRUE(log.events.empty());
    budget.release(90);
    drain(io);
    EXPECT_EQ(log.events, (std::vector<std::string>{"large", "small"}));
    EXPECT_EQ(budget.in_use(), 55U);
    EXPECT_EQ(budget.waits(), 2U);
}

TEST(ByteBudget, ARequestLargerThanTheBudgetTakesAllOfItOnceFree)
{
    asio::io_context io;
    ByteBudget budget(io.get_executor(), 100);
    ASSERT_TRUE(budget.try_acquire(1));
    Log log;
    budget.async_acquire(1000, log.on("huge"));
    drain(io);
    EXPECT_TRUE(log.events.empty());
    budget.release(1);
    drain(io);
    EXPECT_EQ(log.events, std::vector<std::string>{"huge"});
    EXPECT_EQ(budget.in_use(), 100U);
    budget.release(1000);
    EXPECT_EQ(budget.in_use(), 0U);
}

TEST(ByteBudget, ACancelledWaiterTakesNothingAndLetsTheNextOneIn)
{
    asio::io_context io;
    ByteBudget budget(io.get_executor(), 100);
    ASSERT_TRUE(budget.try_acquire(60));
    Log log;
    asio::cancellation_signal cancel;
    budget.async_acquire(80, asio::bind_cancellation_slot(cancel.slot(), log.on("first")));
    budget.async_acquire(30, log.on("second"));
    drain(io);
    EXPECT_TRUE(log.events.empty());
    cancel.emit(asio::cancellation_type::terminal);
    drain(io);
    EXPECT_EQ(log.events, (std::vector<std::string>{"first:aborted", "second"}));
    EXPECT_EQ(budget.in_use(), 90U);
    EXPECT_EQ(budget.waiting(), 0U);
    // A cancellation after the fact changes nothing.
    cancel.emit(asio::cancellation_type::terminal);
    drain(io);
    EXPECT_EQ(budget.in_use(), 90U);
}

TEST(ByteBudget, DestroyingItAbortsItsWaiters)
{
    asio::io_context io;
    Log log;
    {
        ByteBudget budget(io.get_executor(), 10);
        ASSERT_TRUE(budget.try_acquire(10));
        budget.async_acquire(5, log.on("waiter"));
    }
    io.run();
    EXPECT_EQ(log.events, std::vector<std::string>{"waiter:aborted"});
}

TEST(BudgetLease, GivesItsBytesBackOnceWhenDestroyedOrMoved)
{
    asio::io_context io;
    ByteBudget budget(io.get_executor(), 100);
    ASSERT_TRUE(budget.try_acquire(30));
    {
        BudgetLease a(budget, 30);
        BudgetLease b = std::move(a);
        EXPECT_EQ(budget.in_use(), 30U);
    }
    EXPECT_EQ(budget.in_use(), 0U);
}

}  // namespace
}  // namespace ismd::block
