// Runtime ISA dispatch: cpuid picks the best kernels the CPU runs, the environment
// variable SQUEEZEPROMPT_CPU_ISA=scalar|avx2|avx512 overrides it, and two internal
// ops let tests switch paths inside one process. Never -march=native: one wheel
// must run on every x86-64 CPU.
#include <torch/library.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels.h"

namespace squeezeprompt {
namespace cpu {
namespace {

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

// The AVX-512 translation unit is compiled with exactly these extensions, so all
// of them must be present before its code may run.
bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") &&
         __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::kScalar;
  if (name == "avx2") return Isa::kAvx2;
  if (name == "avx512") return Isa::kAvx512;
  TORCH_CHECK(false, "SQUEEZEPROMPT_CPU_ISA must be one of scalar, avx2, avx512, got '", name,
              "'");
}

Isa best_isa() {
  if (cpu_has_avx512()) return Isa::kAvx512;
  if (cpu_has_avx2()) return Isa::kAvx2;
  return Isa::kScalar;
}

Isa initial_isa() {
  const char* env = std::getenv("SQUEEZEPROMPT_CPU_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  const Isa isa = parse_isa(env);
  TORCH_CHECK(isa_supported(isa), "SQUEEZEPROMPT_CPU_ISA=", env,
              " was requested but this CPU does not support it (supported: scalar",
              cpu_has_avx2() ? ", avx2" : "", cpu_has_avx512() ? ", avx512" : "", ")");
  return isa;
}

// -1 until first use; an atomic so a forced switch is seen by every thread.
std::atomic<int> g_isa{-1};

// AMD's cores since Zen (family 0x17) run multiplies and FMAs with subnormal inputs at
// full speed; Intel's cores may take a microcode assist for them, so they keep converting.
bool cpu_has_fast_subnormals() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
  const bool amd = ebx == 0x68747541 && edx == 0x69746e65 && ecx == 0x444d4163;  // AuthenticAMD
  if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const unsigned base = (eax >> 8) & 0xF, extended = (eax >> 20) & 0xFF;
  return base + (base == 0xF ? extended : 0) >= 0x17;
#else
  return false;
#endif
}

bool try_parse_code_decode(const std::string& name, CodeDecode* mode) {
  if (name == "auto")
    *mode = CodeDecode::kAuto;
  else if (name == "convert")
    *mode = CodeDecode::kConvert;
  else if (name == "subnormal")
    *mode = CodeDecode::kSubnormal;
  else
    return false;
  return true;
}

CodeDecode parse_code_decode(const std::string& name) {
  CodeDecode mode = CodeDecode::kAuto;
  TORCH_CHECK(try_parse_code_decode(name, &mode),
              "SQUEEZEPROMPT_CODE_DECODE (how decode kernels read weight codes) must be one of auto, ",
              "convert, subnormal, got '", name, "'");
  return mode;
}

const char* code_decode_name(CodeDecode mode) {
  switch (mode) {
    case CodeDecode::kAuto: return "auto";
    case CodeDecode::kConvert: return "convert";
    case CodeDecode::kSubnormal: return "subnormal";
  }
  return "unknown";
}

CodeDecode initial_code_decode() {
  const char* env = std::getenv("SQUEEZEPROMPT_CODE_DECODE");
  if (env == nullptr || *env == '\0') return CodeDecode::kAuto;
  return parse_code_decode(env);
}

// -1 until first use, as g_isa.
std::atomic<int> g_code_decode{-1};

CodeDecode active_code_decode() {
  int v = g_code_decode.load(std::memory_order_acquire);
  if (v < 0) {
    v = static_cast<int>(initial_code_decode());
    g_code_decode.store(v, std::memory_order_release);
  }
  return static_cast<CodeDecode>(v);
}

}  // namespace

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return cpu_has_avx2();
    case Isa::kAvx512: return cpu_has_avx512();
  }
  return false;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

Isa active_isa() {
  int v = g_isa.load(std::memory_order_acquire);
  if (v < 0) {
    v = static_cast<int>(initial_isa());
    g_isa.store(v, std::memory_order_release);
  }
  return static_cast<Isa>(v);
}

void set_active_isa(Isa isa) {
  TORCH_CHECK(isa_supported(isa), "squeezeprompt: CPU ISA '", isa_name(isa),
              "' was requested but this CPU does not support it");
  g_isa.store(static_cast<int>(isa), std::memory_order_release);
}

bool codes_as_subnormals() {
#if defined(__x86_64__) || defined(__i386__)
  // Denormals-are-zero (MXCSR bit 6, set per thread, e.g. by torch.set_flush_denormal)
  // would read every code as 0.
  if (_mm_getcsr() & 0x40) return false;
  switch (active_code_decode()) {
    case CodeDecode::kConvert: return false;
    case CodeDecode::kSubnormal: return true;
    case CodeDecode::kAuto: break;
  }
  static const bool fast = cpu_has_fast_subnormals();
  return fast;
#else
  return false;
#endif
}

const Kernels& active_kernels() {
  switch (active_isa()) {
    case Isa::kAvx512: return kernels_avx512();
    case Isa::kAvx2: return kernels_avx2();
    case Isa::kScalar: break;
  }
  return kernels_scalar();
}

namespace {

std::string get_isa() { return isa_name(active_isa()); }

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (Isa isa : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512})
    if (isa_supported(isa)) out.emplace_back(isa_name(isa));
  return out;
}

std::string set_isa(const std::string& name) {
  const std::string previous = get_isa();
  set_active_isa(parse_isa(name));
  return previous;
}

std::string get_code_decode() { return code_decode_name(active_code_decode()); }

// Forcing a mode works even when the environment variable holds a bad value (that
// value then counts as "auto" for the returned previous mode).
std::string set_code_decode(const std::string& name) {
  const CodeDecode mode = parse_code_decode(name);
  const int raw = g_code_decode.exchange(static_cast<int>(mode));
  CodeDecode previous = CodeDecode::kAuto;
  if (raw >= 0) {
    previous = static_cast<CodeDecode>(raw);
  } else if (const char* env = std::getenv("SQUEEZEPROMPT_CODE_DECODE")) {
    if (*env != '\0' && !try_parse_code_decode(env, &previous)) previous = CodeDecode::kAuto;
  }
  return code_decode_name(previous);
}

}  // namespace

// Internal ops (leading underscore): they take no tensors, so they need no fake
// kernels; tests use them to run every ISA path in one process.
TORCH_LIBRARY_FRAGMENT(squeezeprompt, m) {
  m.def("_cpu_isa() -> str", &get_isa);
  m.def("_cpu_isas_available() -> str[]", &available_isas);
  m.def("_set_cpu_isa(str isa) -> str", &set_isa);
  m.def("_cpu_code_decode() -> str", &get_code_decode);
  m.def("_set_cpu_code_decode(str mode) -> str", &set_code_decode);
  // What the mode means on this CPU and thread now ("auto" resolved, the
  // denormals-are-zero fallback applied): for benchmark reports.
  m.def("_cpu_codes_as_subnormals() -> bool", &codes_as_subnormals);
}

}  // namespace cpu
}  // namespace squeezeprompt
