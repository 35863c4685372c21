// An HTTP server for test_shim_listen_apps.sh: com.sun.net.httpserver under SST_LISTEN.  Every
// request is answered with the peer as the server sees it, the body's length and SHA-256.
// Compiled by the test (javac), run as: java -cp DIR AppsServer PORT
import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;
import java.security.MessageDigest;
import java.util.concurrent.Executors;

public class AppsServer {
    public static void main(String[] args) throws Exception {
        HttpServer s = HttpServer.create(new InetSocketAddress(Integer.parseInt(args[0])), 64);
        s.createContext("/", ex -> {
            byte[] body = ex.getRequestBody().readAllBytes();
            String r;
            try {
                byte[] d = MessageDigest.getInstance("SHA-256").digest(body);
                StringBuilder hex = new StringBuilder();
                for (int i = 0; i < 8; i++)
                    hex.append(String.format("%02x", d[i]));
                r = "peer=" + ex.getRemoteAddress().getAddress().getHostAddress() + " got=" + body.length
                    + " sha=" + hex + "\n";
            } catch (Exception e) {
                r = "error " + e + "\n";
            }
            byte[] out = r.getBytes();
            ex.sendResponseHeaders(200, out.length);
            ex.getResponseBody().write(out);
            ex.close();
        });
        s.setExecutor(Executors.newFixedThreadPool(4));
        s.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> s.stop(0)));
    }
}
