/*
 * A stand-in for libedgetpu's C API (edgetpu_c.h), for tests on machines without an Edge TPU.
 *
 * It implements only what edgepipe calls through ctypes: edgetpu_list_devices, edgetpu_free_devices
 * and edgetpu_version. It is NOT a delegate: it has no tflite_plugin_create_delegate, so loading it
 * as a TFLite delegate fails, exactly as a library without a usable Edge TPU behind it would.
 *
 * Behaviour is chosen at compile time (the tests build one .so per variant):
 *   -DFAKE_PCI=N -DFAKE_USB=M   list N PCIe devices (/dev/apex_i) then M USB devices (default 0 and 0)
 *   -DFAKE_CRASH                edgetpu_list_devices dereferences NULL (SIGSEGV), as a mismatched build can
 *   -DFAKE_HANG                 edgetpu_list_devices never returns
 *   -DFAKE_VERSION="..."        the edgetpu_version() string
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
