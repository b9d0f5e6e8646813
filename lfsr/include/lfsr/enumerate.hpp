// lfsr/enumerate.hpp: brute-force cycle structure by visiting every state.
//
// The oracle for the algebra, and the only way to list each cycle's states.
// States are packed as the index s0 + s1 q + ... + s(d-1) q^(d-1).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "lfsr/cycles.hpp"

namespace lfsr {

class Field;

// Bytes the enumerator needs for q^d states: a visited bitmap (q^d / 8) for a
// nonsingular register (c0 != 0), one byte per state (tail depths) for a
// singular one, plus 8 bytes per state when cycles are listed. Empty when q^d
// does not fit in 64 bits.
std::optional<std::uint64_t> enumeration_memory_bytes(std::uint64_t q, unsigned degree, bool singular,
                                                      bool list_cycles = false);

// One cycle: its states as indices, starting at the least one. Plain value type.
struct ListedCycle {
  std::uint64_t length = 0;
  std::vector<std::uint64_t> states;
};

// Plain value type. `structure` has every field of CycleStructure; `cycle_list` is filled (ordered
// by least state) only when asked for.
struct Enumeration {
  CycleStructure structure;
  std::vector<ListedCycle> cycle_list;
};

// Visits all q^d states. Throws std::invalid_argument (naming `coefficients`)
// for bad coefficients or when q^d >= 2^40. Memory: see enumeration_memory_bytes.
Enumeration enumerate_cycles(const Field& field, const std::vector<std::uint64_t>& coefficients,
                             bool list_cycles = false);

std::vector<std::uint64_t> state_of_index(std::uint64_t q, unsigned degree, std::uint64_t index);
std::uint64_t index_of_state(std::uint64_t q, const std::vector<std::uint64_t>& state);

}  // namespace lfsr
