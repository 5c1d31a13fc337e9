// SPDX-License-Identifier: MIT
#include "block/uring.hpp"

#include <liburing.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <boost/asio/post.hpp>

namespace ismd::block {

struct DiskRing::Op {
    enum class Kind { read, write, flush };
    Kind kind = Kind::read;
    int fd = -1;
    uint64_t offset = 0;
    std::byte* data = nullptr;
    std::size_t left = 0;  // bytes still to read or write
    bool fua = false;
    bool punt = false;  // after EAGAIN: let the kernel's workers do it (IOSQE_ASYNC)
    Done done;
};

tl::expected<std::unique_ptr<DiskRing>, std::string> DiskRing::create(
    const boost::asio::any_io_executor& loop, unsigned entries)
{
    std::unique_ptr<DiskRing> r(new DiskRing(loop, std::max(entries, 1U)));
    if (int e = io_uring_queue_init(r->entries_, r->ring_.get(), 0); e < 0)
        return tl::unexpected(std::string("io_uring_setup: ") + std::strerror(-e));
    r->ring_ready_ = true;
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0)
        return tl::unexpected(std::string("eventfd: ") + std::strerror(errno));
    r->eventfd_.assign(efd);
    if (int e = io_uring_register_eventfd(r->ring_.get(), efd); e < 0)
        return tl::unexpected(std::string("io_uring_register eventfd: ") + std::strerror(-e));
    r->wait_eventfd();
    return r;
}

DiskRing::DiskRing(const boost::asio::any_io_executor& loop, unsigned entries)
    : loop_(loop),
      entries_(entries),
      ring_(std::make_unique<io_uring>()),
      eventfd_(loop),
      retry_(loop)
{
}

DiskRing::~DiskRing()
{
    *alive_ = false;
    if (!ring_ready_)
        return;
    // The kernel may still be writing into buffers the Dones keep alive: wait for every
    // operation it holds before they go. Disk I/O ends; this is shutdown only.
    if (io_uring_sq_ready(ring_.get()) > 0)
        io_uring_submit(ring_.get());
    // What the kernel refused to take (a failed submit) never completes: those few
    // operations are left, not waited for.
    std::size_t in_kernel = in_flight_ - io_uring_sq_ready(ring_.get());
    while (in_kernel > 0) {
        io_uring_cqe* cqe = nullptr;
        const int e = io_uring_wait_cqe(ring_.get(), &cqe);
        if (e == -EINTR)
            continue;
        if (e < 0)
            break;  // nothing more will come: leak the operations rather than free them
        delete static_cast<Op*>(io_uring_cqe_get_data(cqe));
        io_uring_cqe_seen(ring_.get(), cqe);
        --in_kernel;
    }
    io_uring_queue_exit(ring_.get());
}

void DiskRing::read(Disk& disk, uint64_t offset, std::span<std::byte> out, Done done)
{
    auto fd = disk.fd_for(offset, out.size(), false);
    if (!fd)
        return fail_later(std::move(done), fd.error());
    if (out.empty())
        return fail_later(std::move(done), 0);
    auto op = std::make_unique<Op>();
    op->kind = Op::Kind::read;
    op->fd = *fd;
    op->offset = offset;
    op->data = out.data();
    op->left = out.size();
    op->done = std::move(done);
    add(std::move(op));
}

void DiskRing::write(Disk& disk, uint64_t offset, std::span<const std::byte> in, bool fua,
                     Done done)
{
    auto fd = disk.fd_for(offset, in.size(), true);
    if (!fd)
        return fail_later(std::move(done), fd.error());
    auto op = std::make_unique<Op>();
    op->kind = in.empty() ? Op::Kind::flush : Op::Kind::write;
    if (in.empty() && !fua)
        return fail_later(std::move(done), 0);
    op->fd = *fd;
    op->offset = offset;
    // The kernel only reads from it; io_uring's prep takes a plain pointer.
    op->data = const_cast<std::byte*>(in.data());
    op->left = in.size();
    op->fua = fua;
    op->done = std::move(done);
    add(std::move(op));
}

void DiskRing::flush(Disk& disk, Done done)
{
    auto op = std::make_unique<Op>();
    op->kind = Op::Kind::flush;
    op->fd = disk.fd();
    op->done = std::move(done);
    add(std::move(op));
}

void DiskRing::fail_later(Done done, int err)
{
    boost::asio::post(loop_, [done = std::move(done), err] { done(err); });
}

void DiskRing::add(std::unique_ptr<Op> op)
{
    pending_.push_back(std::move(op));
    kick();
}

void DiskRing::kick()
{
    if (kicked_)
        return;
    kicked_ = true;
    // Everything asked for in this turn of the loop goes to the kernel in one call.
    boost::asio::post(loop_, [this, alive = std::weak_ptr<bool>(alive_)] {
        if (!alive.lock())
            return;
        kicked_ = false;
        submit();
    });
}

void DiskRing::submit()
{
    while (!pending_.empty() && in_flight_ < entries_) {
        io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
        if (sqe == nullptr)
            break;
        Op* op = pending_.front().release();
        pending_.pop_front();
        switch (op->kind) {
            case Op::Kind::read:
                io_uring_prep_read(sqe, op->fd, op->data, static_cast<unsigned>(op->left),
                                   op->offset);
                break;
            case Op::Kind::write:
                io_uring_prep_write(sqe, op->fd, op->data, static_cast<unsigned>(op->left),
                                    op->offset);
                if (op->fua)
                    sqe->rw_flags = RWF_DSYNC;
                break;
            case Op::Kind::flush:
                io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
                break;
        }
        if (op->punt)
            io_uring_sqe_set_flags(sqe, IOSQE_ASYNC);
        io_uring_sqe_set_data(sqe, op);
        ++in_flight_;
    }
    // What completes inside the submit is reaped below: no eventfd wake-up for it.
    io_uring_cq_eventfd_toggle(ring_.get(), false);
    int n = 0;
    do
        n = io_uring_submit(ring_.get());
    while (n == -EINTR);
    reap();
    io_uring_cq_eventfd_toggle(ring_.get(), true);
    // The flag's store before the tail's load: a completion the kernel posted while it
    // read the flag as off is seen by this reap, or the kernel sees the flag on.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    reap();  // what completed between the first reap and the toggle
    if (n < 0 && io_uring_sq_ready(ring_.get()) > 0) {
        // EAGAIN / EBUSY: the kernel is short of something for a moment; the entries
        // stay in the submission queue for the next try.
        retry_.expires_after(std::chrono::milliseconds(1));
        retry_.async_wait(
            [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
                if (!ec && alive.lock())
                    submit();
            });
    }
}

void DiskRing::reap()
{
    reaped_.clear();
    unsigned head = 0;
    unsigned count = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(ring_.get(), head, cqe)
    {
        reaped_.emplace_back(static_cast<Op*>(io_uring_cqe_get_data(cqe)), cqe->res);
        ++count;
    }
    if (count == 0)
        return;
    io_uring_cq_advance(ring_.get(), count);
    in_flight_ -= count;
    // complete() may ask for more (reentering reap through nothing but kick's post).
    auto batch = std::move(reaped_);
    for (auto [op, res] : batch)
        complete(op, res);
    reaped_ = std::move(batch);
    if (!pending_.empty())
        kick();
}

void DiskRing::complete(Op* op, int res)
{
    std::unique_ptr<Op> owned(op);
    if (res == -EAGAIN || res == -EINTR) {
        owned->punt = true;
        return add(std::move(owned));
    }
    if (res < 0)
        return owned->done(-res);
    const auto n = static_cast<std::size_t>(res);
    if (owned->kind != Op::Kind::flush && n < owned->left) {
        if (n == 0)
            return owned->done(EIO);  // the file shrank under us: never hand out zeroes
        owned->data += n;
        owned->offset += n;
        owned->left -= n;
        return add(std::move(owned));
    }
    owned->done(0);
}

void DiskRing::wait_eventfd()
{
    eventfd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                        [this, alive = std::weak_ptr<bool>(alive_)](boost::system::error_code ec) {
                            if (ec || !alive.lock())
                                return;
                            uint64_t count = 0;
                            [[maybe_unused]] auto r =
                                ::read(eventfd_.native_handle(), &count, sizeof count);
                            reap();
                            wait_eventfd();
                        });
}

}  // namespace ismd::block
