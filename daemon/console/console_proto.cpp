// SPDX-License-Identifier: MIT
#include "console/console_proto.hpp"

#include <algorithm>

#include "ism/byte_order.hpp"

namespace ismd::console {

namespace {

class Writer {
public:
    explicit Writer(MsgType type) { out_.push_back(static_cast<std::byte>(type)); }
    Writer& u16(uint16_t v) { return be(v, 2); }
    Writer& u32(uint32_t v) { return be(v, 4); }
    Writer& u64(uint64_t v) { return be(v, 8); }
    Writer& bytes(std::span<const std::byte> b)
    {
        out_.insert(out_.end(), b.begin(), b.end());
        return *this;
    }
    Writer& text(const std::string& s) { return bytes(std::as_bytes(std::span(s))); }
    std::vector<std::byte> take() { return std::move(out_); }

private:
    Writer& be(uint64_t v, std::size_t n)
    {
        const std::size_t at = out_.size();
        out_.resize(at + n);
        ism::store_be(std::span(out_).subspan(at, n), v);
        return *this;
    }
    std::vector<std::byte> out_;
};

class Reader {
public:
    explicit Reader(std::span<const std::byte> in) : in_(in) {}
    bool u16(uint16_t& v) { return be(v, 2); }
    bool u32(uint32_t& v) { return be(v, 4); }
    bool u64(uint64_t& v) { return be(v, 8); }
    std::vector<std::byte> rest()
    {
        std::vector<std::byte> r(in_.begin() + static_cast<std::ptrdiff_t>(at_), in_.end());
        at_ = in_.size();
        return r;
    }
    std::string rest_text()
    {
        std::string s(reinterpret_cast<const char*>(in_.data()) + at_, in_.size() - at_);
        at_ = in_.size();
        return s;
    }
    [[nodiscard]] bool done() const { return at_ == in_.size(); }

private:
    template <class T>
    bool be(T& v, std::size_t n)
    {
        if (in_.size() - at_ < n)
            return false;
        v = static_cast<T>(ism::load_be(in_.subspan(at_, n)));
        at_ += n;
        return true;
    }
    std::span<const std::byte> in_;
    std::size_t at_ = 0;
};

bool term_ok(const std::string& t)
{
    return t.size() <= kMaxTerm && std::all_of(t.begin(), t.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '+';
           });
}

}  // namespace

std::vector<std::byte> encode(const Message& message)
{
    struct Visit {
        std::vector<std::byte> operator()(const Open& m)
        {
            return Writer(MsgType::open)
                .u32(m.attach)
                .u64(m.session_seen)
                .u64(m.offset_seen)
                .u16(m.cols)
                .u16(m.rows)
                .text(m.term)
                .take();
        }
        std::vector<std::byte> operator()(const Close& m)
        {
            return Writer(MsgType::close).u32(m.attach).take();
        }
        std::vector<std::byte> operator()(const Input& m)
        {
            return Writer(MsgType::input).bytes(m.bytes).take();
        }
        std::vector<std::byte> operator()(const Resize& m)
        {
            return Writer(MsgType::resize).u16(m.cols).u16(m.rows).take();
        }
        std::vector<std::byte> operator()(const Break&) { return Writer(MsgType::brk).take(); }
        std::vector<std::byte> operator()(const Hangup&) { return Writer(MsgType::hangup).take(); }
        std::vector<std::byte> operator()(const Replay& m)
        {
            return Writer(MsgType::replay)
                .u32(m.attach)
                .u64(m.session)
                .u64(m.offset)
                .bytes(m.bytes)
                .take();
        }
        std::vector<std::byte> operator()(const Output& m)
        {
            return Writer(MsgType::output).u64(m.offset).bytes(m.bytes).take();
        }
        std::vector<std::byte> operator()(const Notice& m)
        {
            return Writer(MsgType::notice).text(m.text).take();
        }
        std::vector<std::byte> operator()(const Refused& m)
        {
            return Writer(MsgType::refused).u32(m.attach).text(m.reason).take();
        }
    };
    return std::visit(Visit{}, message);
}

std::optional<Message> decode(std::span<const std::byte> bytes)
{
    if (bytes.empty())
        return std::nullopt;
    Reader r(bytes.subspan(1));
    switch (static_cast<MsgType>(bytes[0])) {
        case MsgType::open: {
            Open m;
            if (!r.u32(m.attach) || !r.u64(m.session_seen) || !r.u64(m.offset_seen) ||
                !r.u16(m.cols) || !r.u16(m.rows))
                return std::nullopt;
            m.term = r.rest_text();
            if (!term_ok(m.term))
                return std::nullopt;
            return m;
        }
        case MsgType::close: {
            Close m;
            if (!r.u32(m.attach) || !r.done())
                return std::nullopt;
            return m;
        }
        case MsgType::input:
            return Input{r.rest()};
        case MsgType::resize: {
            Resize m;
            if (!r.u16(m.cols) || !r.u16(m.rows) || !r.done())
                return std::nullopt;
            return m;
        }
        case MsgType::brk:
            return r.done() ? std::optional<Message>(Break{}) : std::nullopt;
        case MsgType::hangup:
            return r.done() ? std::optional<Message>(Hangup{}) : std::nullopt;
        case MsgType::replay: {
            Replay m;
            if (!r.u32(m.attach) || !r.u64(m.session) || !r.u64(m.offset))
                return std::nullopt;
            m.bytes = r.rest();
            return m;
        }
        case MsgType::output: {
            Output m;
            if (!r.u64(m.offset))
                return std::nullopt;
            m.bytes = r.rest();
            return m;
        }
        case MsgType::notice:
            return Notice{r.rest_text()};
        case MsgType::refused: {
            Refused m;
            if (!r.u32(m.attach))
                return std::nullopt;
            m.reason = r.rest_text();
            return m;
        }
    }
    return std::nullopt;
}

}  // namespace ismd::console
