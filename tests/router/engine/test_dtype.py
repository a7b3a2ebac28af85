"""The engine's dtype from /proc/cpuinfo texts as real machines print them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.engine.dtype import choose_dtype, cpu_flags, engine_dtype, model_dtype

# First processor of each /proc/cpuinfo (shortened to the lines that matter; flags as the kernel lists them).
SAPPHIRE_RAPIDS = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse \
sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid \
tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c \
rdrand hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq \
rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 \
xsaves avx_vnni avx512_bf16 wbnoinvd arat avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes \
vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid cldemote movdiri movdir64b md_clear \
serialize tsxldtrk amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities
bugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs eibrs_pbrsb
processor\t: 1
"""

# AMD Zen 4: AVX512-BF16 without AMX.
EPYC_GENOA = """\
processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9354 32-Core Processor
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse \
sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl cpuid extd_apicid \
tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c \
rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext \
perfctr_core invpcid_single ssbd ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 erms invpcid \
avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt \
xsavec xgetbv1 xsaves avx512_bf16 clzero xsaveerptr wbnoinvd arat npt nrip_save avx512vbmi umip pku \
ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid fsrm
bugs\t\t: sysret_ss_attrs null_seg spectre_v1 spectre_v2 spec_store_bypass srso
"""

# Cascade Lake: AVX-512, but bfloat16 only arrived with Cooper Lake.
CASCADE_LAKE = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse \
sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid \
aperfmperf tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt \
tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single pti \
fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid mpx avx512f avx512dq rdseed adx smap clflushopt \
clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves ida arat pku ospke avx512_vnni
"""

# A 2-core AVX2 VM (the development machines this project was first measured on).
AVX2_VM = """\
processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse \
sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid \
extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx \
f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext \
ssbd ibrs ibpb stibp vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 rdseed adx smap clflushopt clwb \
sha_ni xsaveopt xsavec xgetbv1 clzero xsaveerptr arat npt nrip_save umip rdpid
"""

# Arm: Neoverse V1 (Graviton3) has BF16, Neoverse N1 (Graviton2) does not.
NEOVERSE_V1 = """\
processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma \
lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs paca pacg dcpodp \
svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer\t: 0x41
CPU part\t: 0xd40
"""
NEOVERSE_N1 = """\
processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop \
asimddp ssbs
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


@pytest.mark.parametrize(
    ("cpuinfo", "dtype", "because"),
    [
        (SAPPHIRE_RAPIDS, "bfloat16", "amx_bf16, avx512_bf16"),
        (EPYC_GENOA, "bfloat16", "avx512_bf16"),
        (NEOVERSE_V1, "bfloat16", "bf16"),
        (CASCADE_LAKE, "float32", "no avx512_bf16"),
        (AVX2_VM, "float32", "no avx512_bf16"),
        (NEOVERSE_N1, "float32", "no avx512_bf16"),
        ("", "float32", "cannot be read"),
    ],
    ids=["sapphire-rapids", "epyc-genoa", "neoverse-v1", "cascade-lake", "avx2-vm", "neoverse-n1", "none"],
)
def test_auto_on_the_cpu_follows_native_bf16(cpuinfo: str, dtype: str, because: str) -> None:
    choice = choose_dtype("auto", cpu=True, cpuinfo=cpuinfo, model_dtype="bfloat16")
    assert choice.dtype == dtype
    assert because in choice.reason


def test_a_gpu_runs_the_models_own_dtype_whatever_its_host_cpu() -> None:
    for cpuinfo in (AVX2_VM, SAPPHIRE_RAPIDS):
        assert choose_dtype("auto", cpu=False, cpuinfo=cpuinfo, model_dtype="bfloat16").dtype == "bfloat16"
    assert choose_dtype("auto", cpu=False, cpuinfo=AVX2_VM, model_dtype="float16").dtype == "float16"


@pytest.mark.parametrize("forced", ["bfloat16", "float32", "float16"])
def test_a_setting_forces_the_dtype(forced: str) -> None:
    for cpuinfo in (AVX2_VM, SAPPHIRE_RAPIDS):
        for cpu in (True, False):
            choice = choose_dtype(forced, cpu=cpu, cpuinfo=cpuinfo, model_dtype="bfloat16")  # type: ignore[arg-type]
            assert choice.dtype == forced and "LORA_ROUTER_DTYPE" in choice.reason


def test_flags_come_from_the_first_processor_only() -> None:
    assert "amx_tile" in cpu_flags(SAPPHIRE_RAPIDS)
    assert cpu_flags(NEOVERSE_N1) == {
        *"fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc".split(),
        *"dcpop asimddp ssbs".split(),
    }
    assert cpu_flags("processor\t: 0\n") == set()


def test_this_machine_and_the_prepared_model(base_model_dir: Path) -> None:
    """On this machine: what its own /proc/cpuinfo says, for the prepared (bfloat16) model."""
    assert model_dtype(base_model_dir) == json.loads((base_model_dir / "config.json").read_text())["dtype"]
    cpuinfo = Path("/proc/cpuinfo").read_text()
    expected = choose_dtype("auto", cpu=True, cpuinfo=cpuinfo, model_dtype=model_dtype(base_model_dir))
    assert engine_dtype("auto", base_model_dir) == expected
