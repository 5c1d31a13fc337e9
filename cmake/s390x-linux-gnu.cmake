# SPDX-License-Identifier: MIT
# Cross-build for s390x (big-endian), run under qemu-user: byte-order mistakes fail on
# this machine and not on a customer's. Debian's g++-s390x-linux-gnu and
# qemu-user-static provide the compiler and the emulator.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR s390x)
set(CMAKE_C_COMPILER s390x-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER s390x-linux-gnu-g++)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-s390x-static)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# Header-only host packages (tl-expected) are usable as they are; libraries and programs
# come from the cross toolchain only.
set(CMAKE_FIND_ROOT_PATH /usr/s390x-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
