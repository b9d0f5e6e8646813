// lfsr/lfsr.hpp: the whole LFSR library (linear feedback shift registers over
// finite fields, on FLINT). Include the topic headers for less.
#pragma once

#include "lfsr/bigint.hpp"
#include "lfsr/bm.hpp"
#include "lfsr/cycles.hpp"
#include "lfsr/enumerate.hpp"
#include "lfsr/factor_cache.hpp"
#include "lfsr/field.hpp"
#include "lfsr/poly.hpp"
#include "lfsr/sequence.hpp"
