// A long-running JVM app: prints the heap and processors the JVM was given,
// then runs until it is stopped. On SIGTERM the JVM runs its shutdown hooks
// and exits 143; envinit's --remap-exit 143 makes that a clean 0.
public class Main {
    public static void main(String[] args) throws InterruptedException {
        Runtime runtime = Runtime.getRuntime();
        System.out.println("max heap: " + runtime.maxMemory() / (1024 * 1024) + " MiB");
        System.out.println("processors: " + runtime.availableProcessors());
        runtime.addShutdownHook(new Thread(() -> System.out.println("stopping: shutdown hook ran")));
        System.out.println("ready");
        Thread.currentThread().join();
    }
}
