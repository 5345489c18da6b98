// Linux CPU list text ("0-3,8"), as sysfs, taskset -c and Slurm write it. Shared by the engine
// and the rehearsal CPU-map library (rehearsal_cpus.cpp), which links nothing else of ours.
#pragma once
#include <string>
#include <vector>

namespace bedrock_engine {

// Sorted CPU ids -> "0-3,8" (consecutive ids folded into ranges).
std::string format_cpu_list(const std::vector<int>& cpus);

}  // namespace bedrock_engine
