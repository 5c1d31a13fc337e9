/* SPDX-License-Identifier: MIT */
/*
 * Included by tools/kmod-cc right after the kernel's kconfig.h: the compiler
 * features that the kernel's configuration found in its newer GCC, but that
 * Debian 12's GCC 12 lacks, are switched off as GCC 12's own configuration
 * would have them.
 */
#undef CONFIG_CC_HAS_COUNTED_BY
#undef CONFIG_CC_HAS_COUNTED_BY_PTR
