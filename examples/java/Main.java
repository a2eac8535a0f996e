// A long-running JVM app: prints the heap and processors the JVM was given,
// then runs until it is stopped. On SIGTERM the JVM runs its shutdown hooks
// and exits 143; envinit's --remap-exit 143 makes that a clean 0.
//
// On SIGHUP (envinit's reload signal, passed on when a reload changed
// /etc/app/jvm.options: `docker update --memory`, then `docker kill --signal
// HUP`) it reads the options again. A JVM cannot change its heap while it
// runs: it says what the new options ask for and that a restart applies
// them; with EXIT_ON_RELOAD=1 it exits 0 so that the engine's restart
// policy (`docker run --restart unless-stopped`, Kubernetes' default) starts
// it again with the new -Xmx.
import java.nio.file.Files;
import java.nio.file.Path;

public class Main {
    public static void main(String[] args) throws InterruptedException {
        Runtime runtime = Runtime.getRuntime();
        System.out.println("max heap: " + runtime.maxMemory() / (1024 * 1024) + " MiB");
        System.out.println("processors: " + runtime.availableProcessors());
        runtime.addShutdownHook(new Thread(() -> System.out.println("stopping: shutdown hook ran")));
        sun.misc.Signal.handle(new sun.misc.Signal("HUP"), signal -> reloaded(runtime));
        System.out.println("ready");
        Thread.currentThread().join();
    }

    /** The options file changed: what it asks for now, against what runs. */
    static void reloaded(Runtime runtime) {
        String xmx = "no -Xmx";
        try {
            for (String line : Files.readAllLines(Path.of("/etc/app/jvm.options"))) {
                if (line.startsWith("-Xmx")) {
                    xmx = line.trim();
                }
            }
        } catch (java.io.IOException e) {
            System.out.println("reload: cannot read /etc/app/jvm.options: " + e);
            return;
        }
        System.out.println("reload: jvm.options now asks for " + xmx + "; this JVM runs with "
                + runtime.maxMemory() / (1024 * 1024) + " MiB of heap: restart to apply");
        if ("1".equals(System.getenv("EXIT_ON_RELOAD"))) {
            System.out.println("reload: exiting for the restart policy to start the JVM again");
            System.exit(0);
        }
    }
}
