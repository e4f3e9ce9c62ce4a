# boards/rpi4-aarch64/toolchain.cmake - cross-compiles coverd for a Raspberry Pi 4
# (64-bit OS, aarch64-linux-gnu) with Debian's cross gcc, and runs the tests under
# qemu-user. Use:
#   cmake -S . -B build-rpi4 --toolchain boards/rpi4-aarch64/toolchain.cmake \
#         -DCOVERD_SYSROOT=/path/to/aarch64/rootfs
#   cmake --build build-rpi4 && ctest --test-dir build-rpi4
#
# COVERD_SYSROOT is a root filesystem holding the aarch64 -dev packages coverd links
# (Raspberry Pi OS image mounted, a Buildroot staging dir, or debs unpacked with
# dpkg -x). Left empty, the Debian multiarch layout is used instead: the arm64 packages
# installed on the build machine itself (dpkg --add-architecture arm64; apt install
# libsqlite3-dev:arm64 ...), see boards/rpi4-aarch64/NOTES.md.
# Host tools: apt install gcc-aarch64-linux-gnu qemu-user.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(COVERD_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Cross compiler prefix")
set(COVERD_SYSROOT "" CACHE PATH "aarch64 root filesystem with coverd's -dev packages")
set(CMAKE_C_COMPILER ${COVERD_CROSS_PREFIX}gcc)

# try_compile() projects do not see cache variables unless forwarded.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES COVERD_SYSROOT COVERD_CROSS_PREFIX)

# Cortex-A72: tune for the core without leaving the baseline ISA, so the binary still
# runs on a Pi 3 or any other ARMv8-A board.
set(CMAKE_C_FLAGS_INIT "-mtune=cortex-a72")

if(COVERD_SYSROOT)
  set(CMAKE_SYSROOT ${COVERD_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH ${COVERD_SYSROOT})
  set(_pc_libdir
    "${COVERD_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${COVERD_SYSROOT}/usr/lib/pkgconfig:${COVERD_SYSROOT}/usr/share/pkgconfig")
  # pkg-config reports paths as seen on the device; the sysroot dir makes them local.
  set(ENV{PKG_CONFIG_SYSROOT_DIR} ${COVERD_SYSROOT})
  set(_qemu_root ${COVERD_SYSROOT})
else()
  # Debian multiarch: arm64 libraries live beside the host's, and the cross libc in
  # /usr/aarch64-linux-gnu, where qemu finds the dynamic loader.
  set(_pc_libdir "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
  set(ENV{PKG_CONFIG_SYSROOT_DIR} "")
  set(_qemu_root /usr/aarch64-linux-gnu)
endif()
# PKG_CONFIG_LIBDIR (not _PATH) replaces the host's search path, so no x86-64 .pc file
# can be picked up by mistake.
set(ENV{PKG_CONFIG_LIBDIR} ${_pc_libdir})
set(ENV{PKG_CONFIG_PATH} "")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest and try_run() run the aarch64 test binaries under qemu-user.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${_qemu_root})
