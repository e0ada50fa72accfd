// Every squeezeprompt op schema, declared once. Backends (csrc/cpu, csrc/cuda,
// python/squeezeprompt/ops/triton) only add implementations; the meaning of each
// op is fixed by its *_ref function in python/squeezeprompt/ops/.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing squeezeprompt._C loads this library, which runs the registrations
// below. The module itself exposes nothing: ops are reached through
// torch.ops.squeezeprompt, which is what keeps them torch.compile-safe.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(squeezeprompt, m) {
  m.def("int8_weight_linear(Tensor x, Tensor qweight, Tensor scales, Tensor? bias) -> Tensor");
  m.def(
      "int4_weight_linear(Tensor x, Tensor qweight, Tensor scales, Tensor zeros, int group_size, "
      "Tensor? bias) -> Tensor");
  m.def("int8_dynamic_linear(Tensor x, Tensor qweight, Tensor w_scales, Tensor? bias) -> Tensor");
  m.def(
      "int4_dynamic_linear(Tensor x, Tensor qweight, Tensor scales, Tensor zeros, int group_size, "
      "Tensor? bias) -> Tensor");
  m.def(
      "fake_quantize(Tensor x, Tensor scale, Tensor zero_point, int qmin, int qmax, "
      "int group_size) -> Tensor");
  m.def(
      "fake_quantize_backward(Tensor grad, Tensor x, Tensor scale, Tensor zero_point, int qmin, "
      "int qmax, int group_size) -> (Tensor, Tensor, Tensor)");
  m.def("masked_linear(Tensor x, Tensor weight, Tensor mask, Tensor? bias) -> Tensor");
  m.def("sparse24_pack(Tensor weight) -> (Tensor, Tensor)");
  m.def(
      "sparse24_linear(Tensor x, Tensor values, Tensor meta, Tensor? scales, Tensor? bias) -> "
      "Tensor");
  m.def(
      "sparse24_int4_linear(Tensor x, Tensor values, Tensor meta, Tensor scales, Tensor zeros, "
      "int group_size, Tensor? bias) -> Tensor");
}
