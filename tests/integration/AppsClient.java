// test_shim_apps.sh: Java (java.net.Socket, NIO SocketChannel + Selector, java.net.http) against
// B's echo (7000) and HTTP (8080) servers.  The JVM's sockets are dual-stack IPv6 sockets: an
// IPv4 host is connected as ::ffff:a.b.c.d.  Prints only lines that must be the same over kernel
// TCP and under the shim.  Run in source-file mode: java AppsClient.java HOST
import java.io.*;
import java.net.*;
import java.net.http.*;
import java.nio.ByteBuffer;
import java.nio.channels.*;
import java.security.MessageDigest;
import java.util.*;
import java.util.concurrent.CompletableFuture;

public class AppsClient {
    public static void main(String[] args) throws Exception {
        String h = args[0];
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(h, 7000), 10000);
            s.setTcpNoDelay(true);
            s.setKeepAlive(true);
            s.setSoTimeout(20000);
            System.out.println("socket: remote " + s.getRemoteSocketAddress() + " local " + s.getLocalAddress()
                               + " port>0 " + (s.getLocalPort() > 0) + " nodelay " + s.getTcpNoDelay());
            byte[] buf = new byte[1000000];
            new Random(1).nextBytes(buf);
            Thread w = new Thread(() -> {
                try { s.getOutputStream().write(buf); s.shutdownOutput(); } catch (IOException e) { System.out.println("write: " + e); }
            });
            w.start();
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            InputStream in = s.getInputStream();
            byte[] b = new byte[65536];
            for (int n; (n = in.read(b)) > 0; )
                got.write(b, 0, n);
            w.join();
            System.out.println("socket: echo same " + Arrays.equals(got.toByteArray(), buf));
        }
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(h, 7999), 10000);
            System.out.println("refused port: connected");
        } catch (IOException e) {
            System.out.println("refused port: " + e.getClass().getSimpleName() + " " + e.getMessage());
        }
        Selector sel = Selector.open();
        SocketChannel ch = SocketChannel.open();
        ch.configureBlocking(false);
        ch.connect(new InetSocketAddress(h, 7000));
        ch.register(sel, SelectionKey.OP_CONNECT);
        ByteBuffer out = ByteBuffer.wrap("hello nio".getBytes()), inb = ByteBuffer.allocate(100);
        for (boolean done = false; !done; ) {
            if (sel.select(20000) == 0) { System.out.println("nio: no event in 20 s"); break; }
            for (Iterator<SelectionKey> it = sel.selectedKeys().iterator(); it.hasNext(); ) {
                SelectionKey k = it.next();
                it.remove();
                if (k.isConnectable()) {
                    ch.finishConnect();
                    InetSocketAddress l = (InetSocketAddress)ch.getLocalAddress();
                    System.out.println("nio: connected, local " + l.getAddress() + " port>0 " + (l.getPort() > 0));
                    k.interestOps(SelectionKey.OP_WRITE);
                } else if (k.isWritable()) {
                    ch.write(out);
                    if (!out.hasRemaining()) { ch.shutdownOutput(); k.interestOps(SelectionKey.OP_READ); }
                } else if (k.isReadable() && ch.read(inb) < 0) {
                    done = true;
                    System.out.println("nio: echo " + new String(inb.array(), 0, inb.position()));
                }
            }
        }
        ch.close();
        sel.close();
        HttpClient c = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        List<CompletableFuture<HttpResponse<String>>> fs = new ArrayList<>();
        for (int i = 1; i <= 20; i++)
            fs.add(c.sendAsync(HttpRequest.newBuilder(URI.create("http://" + h + ":8080/o" + i + ".txt")).build(),
                               HttpResponse.BodyHandlers.ofString()));
        int ok = 0;
        for (int i = 0; i < 20; i++)
            if (fs.get(i).get().body().equals("obj " + (i + 1) + "\n"))
                ok++;
        System.out.println("httpclient: " + ok + "/20 bodies right");
        HttpResponse<byte[]> r = c.send(HttpRequest.newBuilder(URI.create("http://" + h + ":8080/big")).build(),
                                        HttpResponse.BodyHandlers.ofByteArray());
        System.out.println("httpclient big: " + r.body().length + " bytes sha256 "
                           + HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(r.body())).substring(0, 16));
        System.exit(0);   // the HttpClient's selector thread would keep the JVM up a while
    }
}
