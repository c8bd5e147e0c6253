#pragma once
// Runs a program with an argument vector (no shell: any bytes may be in an argument) and returns
// its exit status, standard output and standard error, for tests of the `losa` command line.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace losa::test {

struct ProcessResult {
  int status = -1;  ///< the exit code; -1 when it did not exit normally
  std::string out, err;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

/// `stdin_text`: what the program reads on standard input (empty: nothing).
inline ProcessResult run_process(const std::vector<std::string>& argv,
                                 const std::string& stdin_text = "") {
  char dir_pattern[] = "/tmp/losa-cli-XXXXXX";
  const std::string dir = mkdtemp(dir_pattern);
  const std::string in_path = dir + "/in", out_path = dir + "/out", err_path = dir + "/err";
  std::ofstream(in_path, std::ios::binary) << stdin_text;
  const pid_t pid = fork();
  if (pid == 0) {
    const int in = open(in_path.c_str(), O_RDONLY);
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  ProcessResult result;
  int status = 0;
  if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
    result.status = WEXITSTATUS(status);
  result.out = slurp(out_path);
  result.err = slurp(err_path);
  std::system(("rm -rf '" + dir + "'").c_str());
  return result;
}

}  // namespace losa::test
