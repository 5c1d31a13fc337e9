// SPDX-License-Identifier: MIT
#include "tools/ism-console/terminal.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

namespace ismd::tools {

RawTerminal::RawTerminal(int fd) : fd_(fd)
{
    termios t{};
    if (::isatty(fd) == 0 || ::tcgetattr(fd, &t) != 0)
        return;
    saved_ = t;
    ::cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    ::tcsetattr(fd, TCSAFLUSH, &t);
}

void RawTerminal::restore() noexcept
{
    if (saved_) {
        ::tcsetattr(fd_, TCSAFLUSH, &*saved_);
        saved_.reset();
    }
}

std::optional<std::pair<unsigned, unsigned>> RawTerminal::size() const
{
    winsize ws{};
    if (::ioctl(fd_, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
        return std::nullopt;
    return std::make_pair(unsigned{ws.ws_col}, unsigned{ws.ws_row});
}

}  // namespace ismd::tools
