// Starts a real `gofastapi dev` for the browser test: the binary built
// from this tree, on a free port, with a temporary data directory, and a
// scripted language model (fakellm.mjs) for the assistant to call.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeLLM } from "./fakellm.mjs";

/**
 * startDev starts the platform and resolves once it has printed its
 * address (it prints it after every part is listening). The result's
 * llm is the fake model (its url and the requests it got); stop() ends
 * both and removes the platform's data.
 */
export async function startDev() {
  const bin = process.env.GOFASTAPI_BIN;
  if (!bin) throw new Error("GOFASTAPI_BIN must name the gofastapi binary (make test-web sets it)");
  const llm = await startFakeLLM();
  const data = mkdtempSync(join(tmpdir(), "gofastapi-web-"));
  const proc = spawn(bin, ["dev", "--addr", "127.0.0.1:0", "--data", data, "--warm", "1", "--log-level", "warn",
    // Any free port: another gofastapi dev on this machine may hold the default.
    "--metrics-addr", "127.0.0.1:0",
    // Per-app figures reach the database each second, so the dashboard shows them soon.
    "--metrics-flush", "1s",
    // The fake model listens on a loopback address, which the assistant
    // refuses as a provider endpoint without this.
    "--assistant-private-endpoints"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /API and editor at (http:\/\/\S+),/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.on("exit", (code) => reject(new Error(`gofastapi dev exited with ${code} before it was ready:\n${log}`)));
  }).catch(async (err) => {
    await llm.stop();
    rmSync(data, { recursive: true, force: true });
    throw err;
  });
  return {
    url,
    llm,
    log: () => log,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await exited;
      }
      rmSync(data, { recursive: true, force: true });
      await llm.stop();
    },
  };
}
