/*
 * A stand-in for libedgetpu's C API (edgetpu_c.h), for tests on machines without an Edge TPU.
 *
 * It implements what edgepipe calls through ctypes: edgetpu_list_devices, edgetpu_free_devices
 * and edgetpu_version. By default it is NOT a delegate: it has no tflite_plugin_create_delegate, so
 * loading it as a TFLite delegate fails, exactly as a library without a usable Edge TPU behind it would.
 * With -DFAKE_DELEGATE it is also a TFLite external delegate that claims every `edgetpu-custom-op`
 * node and "runs" it by zeroing its outputs: a compiled model then loads and invokes as on a board,
 * with meaningless outputs (for testing backend choice, never results).
 *
 * Behaviour is chosen at compile time (the tests build one .so per variant):
 *   -DFAKE_PCI=N -DFAKE_USB=M   list N PCIe devices (/dev/apex_i) then M USB devices (default 0 and 0)
 *   -DFAKE_CRASH                edgetpu_list_devices prints a fatal line on stderr, then dereferences NULL
 *                               (SIGSEGV), as a mismatched build can
 *   -DFAKE_HANG                 edgetpu_list_devices never returns
 *   -DFAKE_VERSION="..."        the edgetpu_version() string
 *   -DFAKE_DELEGATE             also export tflite_plugin_create_delegate / tflite_plugin_destroy_delegate
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FAKE_PCI
#define FAKE_PCI 0
#endif
#ifndef FAKE_USB
#define FAKE_USB 0
#endif
#ifndef FAKE_VERSION
#define FAKE_VERSION "BuildLabel(COMPILER=6.3.0 20170516,DATE=redacted,TIME=redacted), RuntimeVersion(14)"
#endif

/* Same layout as libedgetpu's: enum edgetpu_device_type { EDGETPU_APEX_PCI = 0, EDGETPU_APEX_USB = 1 }. */
struct edgetpu_device {
  int type;
  const char* path;
};

const char* edgetpu_version(void) { return FAKE_VERSION; }

struct edgetpu_device* edgetpu_list_devices(size_t* num_devices) {
#ifdef FAKE_CRASH
  /* A real library's last words before it dies (a glog-style fatal line), unbuffered as glog's are. */
  fputs("F fake_libedgetpu.c:45] Check failed: usb context != nullptr\n", stderr);
  volatile int* nowhere = NULL;
  *nowhere = 1;
#endif
#ifdef FAKE_HANG
  for (;;) sleep(1);
#endif
  size_t count = FAKE_PCI + FAKE_USB;
  *num_devices = count;
  if (count == 0) return NULL;
  struct edgetpu_device* devices = calloc(count, sizeof(struct edgetpu_device));
  for (size_t i = 0; i < count; i++) {
    char* path = malloc(64);
    if (i < FAKE_PCI) {
      devices[i].type = 0;
      snprintf(path, 64, "/dev/apex_%zu", i);
    } else {
      devices[i].type = 1;
      snprintf(path, 64, "/sys/bus/usb/devices/2-%zu", i - FAKE_PCI + 1);
    }
    devices[i].path = path;
  }
  return devices;
}

void edgetpu_free_devices(struct edgetpu_device* devices) {
  if (devices == NULL) return;
  for (size_t i = 0; i < FAKE_PCI + FAKE_USB; i++) free((void*)devices[i].path);
  free(devices);
}

#ifdef FAKE_DELEGATE
/*
 * The prefixes of TFLite's C structs (tensorflow/lite/core/c/common.h) that this delegate touches.
 * Their leading fields have kept these offsets across TFLite 2.x; the registration handed to TFLite is
 * padded with zeros, so fields newer runtimes added after `version` read as "unset".
 */
typedef struct {
  int size;
  int data[];
} FakeIntArray;

typedef struct {
  FakeIntArray* inputs;
  FakeIntArray* outputs;
} FakeNode;

typedef struct FakeContext FakeContext;

typedef struct {
  void* (*init)(FakeContext*, const char*, size_t);
  void (*free)(FakeContext*, void*);
  int (*prepare)(FakeContext*, FakeNode*);
  int (*invoke)(FakeContext*, FakeNode*);
  const char* (*profiling_string)(const FakeContext*, const FakeNode*);
  int builtin_code;
  const char* custom_name;
  int version;
  char zero_padding[256]; /* registration_external, async_kernel, inplace_operator, ... */
} FakeRegistration;

typedef struct FakeDelegate FakeDelegate;

struct FakeContext {
  size_t tensors_size;
  int (*GetExecutionPlan)(FakeContext*, FakeIntArray**);
  void* tensors;
  void* impl_;
  void* ResizeTensor;
  void* ReportError;
  void* AddTensors;
  int (*GetNodeAndRegistration)(FakeContext*, int, FakeNode**, FakeRegistration**);
  int (*ReplaceNodeSubsetsWithDelegateKernels)(FakeContext*, FakeRegistration, const FakeIntArray*, FakeDelegate*);
  /* later fields are not used here */
};

struct FakeDelegate {
  void* data_;
  int (*Prepare)(FakeContext*, FakeDelegate*);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  long long flags;
  void* opaque_delegate_builder;
  char zero_padding[64];
};

static int fake_kernel_invoke(FakeContext* context, FakeNode* node) {
  (void)context;
  (void)node;
  return 0; /* outputs keep whatever the arena holds: this is a stand-in, its results mean nothing */
}

static int fake_delegate_prepare(FakeContext* context, FakeDelegate* delegate) {
  FakeIntArray* plan = NULL;
  if (context->GetExecutionPlan(context, &plan) != 0) return 1;
  FakeIntArray* claimed = calloc(1, sizeof(FakeIntArray) + sizeof(int) * (size_t)(plan->size + 1));
  for (int i = 0; i < plan->size; i++) {
    FakeNode* node = NULL;
    FakeRegistration* registration = NULL;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &registration) != 0) continue;
    if (registration->custom_name && strcmp(registration->custom_name, "edgetpu-custom-op") == 0) {
      claimed->data[claimed->size++] = plan->data[i];
    }
  }
  int status = 0;
  if (claimed->size > 0) {
    FakeRegistration kernel;
    memset(&kernel, 0, sizeof(kernel));
    kernel.invoke = fake_kernel_invoke;
    kernel.builtin_code = 32; /* kTfLiteBuiltinDelegate */
    kernel.custom_name = "FakeEdgeTpuDelegate";
    kernel.version = 1;
    status = context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, claimed, delegate);
  }
  free(claimed);
  return status;
}

FakeDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t count, void (*report_error)(const char*)) {
  (void)keys;
  (void)values;
  (void)count;
  (void)report_error;
  FakeDelegate* delegate = calloc(1, sizeof(FakeDelegate));
  delegate->Prepare = fake_delegate_prepare;
  /* kTfLiteDelegateFlagsAllowDynamicTensors: else TFLite prepares every op before delegating, and the
   * edgetpu-custom-op it cannot resolve fails that (libedgetpu's delegate sets it too). */
  delegate->flags = 1;
  return delegate;
}

void tflite_plugin_destroy_delegate(FakeDelegate* delegate) { free(delegate); }
#endif
