// Runs the real demo server binary (built by cargo) for the tests.

import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
export const binary = (name: string) => path.join(root, "target/debug", name);

export interface RunningServer {
  child: ChildProcess;
  port: number;
  webPort: number;
  fingerprint: string;
  stop(): Promise<void>;
}

/** Starts `server --addr 127.0.0.1:PORT --web 127.0.0.1:0` and waits for its address lines. */
export function startServer(port = 0, extra: string[] = []): Promise<RunningServer> {
  const child = spawn(binary("server"), ["--addr", `127.0.0.1:${port}`, "--web", "127.0.0.1:0", "--rate-limit", "0", ...extra], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  return new Promise((resolve, reject) => {
    let fingerprint = "";
    let tcp = 0;
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error("the server did not start within 20 s")), 20_000);
    child.once("exit", (code) => reject(new Error(`the server exited (${code}) before listening`)));
    lines.on("line", (line) => {
      const banner = /^protocol \S+ \(fingerprint ([0-9a-f]{16})\)/.exec(line);
      if (banner) fingerprint = banner[1];
      const listening = /^listening on 127\.0\.0\.1:(\d+)$/.exec(line);
      if (listening) tcp = Number(listening[1]);
      const web = /^web listening on 127\.0\.0\.1:(\d+)$/.exec(line);
      if (web) {
        clearTimeout(timer);
        resolve({
          child,
          port: tcp,
          webPort: Number(web[1]),
          fingerprint,
          stop: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done();
              child.once("exit", () => done());
              child.kill("SIGTERM");
            }),
        });
      }
    });
  });
}
