/* SPDX-License-Identifier: MIT */
/* stub */
#include "config.h"
