/*
 * A snap7 C program, as snap7's users write them: Cli_* calls from snap7.h, linked with
 * -lsnap7. tests/snap7_kit.rs runs the same binary on the stock libsnap7.so and on the kit's
 * (LD_LIBRARY_PATH picks which), and compares.
 *
 *   snap7_kit data HOST PORT    DB reads 1..65535 bytes of DB1 (byte i = i & 0xFF), DB2 write
 *                               and read back, Cli_ReadMultiVars, disconnect + connect
 *   snap7_kit errors            the codes of failed connects: refused, no CC, closed after CR
 *   snap7_kit host HOST PORT    connect by host name, one read ("result 0x..." either way)
 *
 * One line per step ("OK ...", or "name 0x<code> <text>"); exit status 1 when a check fails.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap7.h"

static int failed;

static void fail(const char *what, int code)
{
    char text[256];
    Cli_ErrorText(code, text, sizeof text);
    printf("FAIL %s: 0x%x %s\n", what, (unsigned)code, text);
    failed = 1;
}

static int check_pattern(const unsigned char *buf, int start, int size, const char *what)
{
    for (int i = 0; i < size; i++) {
        if (buf[i] != (unsigned char)((start + i) & 0xFF)) {
            printf("FAIL %s: byte %d is %u\n", what, i, buf[i]);
            failed = 1;
            return 0;
        }
    }
    return 1;
}

static S7Object connect_to(const char *host, int port)
{
    S7Object cli = Cli_Create();
    uint16_t p = (uint16_t)port;
    Cli_SetParam(cli, p_u16_RemotePort, &p);
    int rc = Cli_ConnectTo(cli, host, 0, 2);
    if (rc != 0)
        fail("Cli_ConnectTo", rc);
    return cli;
}

static void reads(S7Object cli, const char *when)
{
    static const int sizes[] = {1, 4, 222, 480, 1000, 4096, 16384, 65535};
    static unsigned char buf[65536];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        memset(buf, 0xAA, sizeof buf);
        int rc = Cli_DBRead(cli, 1, 0, sizes[k], buf);
        if (rc != 0) {
            fail("Cli_DBRead", rc);
            return;
        }
        if (!check_pattern(buf, 0, sizes[k], "Cli_DBRead"))
            return;
    }
    printf("OK reads %s\n", when);
}

static void writes(S7Object cli)
{
    static unsigned char out[65535], back[65535];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (unsigned char)(i * 7 + 3);
    int rc = Cli_DBWrite(cli, 2, 0, (int)sizeof out, out);
    if (rc != 0) {
        fail("Cli_DBWrite", rc);
        return;
    }
    rc = Cli_DBRead(cli, 2, 0, (int)sizeof back, back);
    if (rc != 0) {
        fail("Cli_DBRead DB2", rc);
        return;
    }
    if (memcmp(out, back, sizeof out) != 0) {
        printf("FAIL DB2 read back differs\n");
        failed = 1;
        return;
    }
    printf("OK write 65535 and read back\n");
}

static void multi_vars(S7Object cli)
{
    unsigned char a[4], b[2], c[8];
    TS7DataItem items[3] = {
        {S7AreaDB, S7WLByte, 0, 1, 0, 4, a},
        {S7AreaDB, S7WLByte, 0, 1, 100, 2, b},
        {S7AreaDB, S7WLByte, 0, 1, 1000, 8, c},
    };
    int rc = Cli_ReadMultiVars(cli, items, 3);
    if (rc != 0) {
        fail("Cli_ReadMultiVars", rc);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (items[i].Result != 0) {
            fail("Cli_ReadMultiVars item", items[i].Result);
            return;
        }
    }
    if (check_pattern(a, 0, 4, "item 0") && check_pattern(b, 100, 2, "item 1") &&
        check_pattern(c, 1000, 8, "item 2"))
        printf("OK multi-vars\n");
}

static int data(const char *host, int port)
{
    S7Object cli = connect_to(host, port);
    if (failed)
        return 1;
    int requested = 0, negotiated = 0, connected = 0;
    Cli_GetPduLength(cli, &requested, &negotiated);
    printf("OK connect pdu %d\n", negotiated);
    reads(cli, "first");
    writes(cli);
    multi_vars(cli);
    Cli_Disconnect(cli);
    Cli_GetConnected(cli, &connected);
    if (connected) {
        printf("FAIL connected after Cli_Disconnect\n");
        failed = 1;
    }
    int rc = Cli_ConnectTo(cli, host, 0, 2);
    if (rc != 0)
        fail("Cli_ConnectTo again", rc);
    else
        reads(cli, "after reconnect");
    Cli_Disconnect(cli);
    Cli_Destroy(&cli);
    if (!failed)
        printf("OK done\n");
    return failed;
}

/* A listener on 127.0.0.1: behaviour 0 never answers the CR, 1 closes after reading it. */
static int listener(int behaviour, int *port, pid_t *child)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        perror("listener");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    *child = fork();
    if (*child == 0) {
        int c = accept(s, NULL, NULL);
        char buf[256];
        if (c >= 0 && read(c, buf, sizeof buf) > 0 && behaviour == 1)
            close(c);
        else
            pause();
        pause();
        _exit(0);
    }
    return s;
}

static void report(const char *name, int rc)
{
    char text[256];
    Cli_ErrorText(rc, text, sizeof text);
    printf("%s 0x%x %s\n", name, (unsigned)rc, text);
}

static int connect_code(int port, int recv_timeout)
{
    S7Object cli = Cli_Create();
    uint16_t p = (uint16_t)port;
    Cli_SetParam(cli, p_u16_RemotePort, &p);
    Cli_SetParam(cli, p_i32_RecvTimeout, &recv_timeout);
    int rc = Cli_ConnectTo(cli, "127.0.0.1", 0, 2);
    Cli_Destroy(&cli);
    return rc;
}

static int errors(void)
{
    int port;
    pid_t child;
    /* A port nobody listens on: bind one, note it, close it. */
    int s = listener(0, &port, &child);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(s);
    report("refused", connect_code(port, 500));

    s = listener(0, &port, &child);
    report("no-cc", connect_code(port, 300));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(s);

    s = listener(1, &port, &child);
    report("closed-after-cr", connect_code(port, 2000));
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(s);
    return 0;
}

static int host(const char *name, int port)
{
    S7Object cli = Cli_Create();
    uint16_t p = (uint16_t)port;
    Cli_SetParam(cli, p_u16_RemotePort, &p);
    int rc = Cli_ConnectTo(cli, name, 0, 2);
    unsigned char buf[4];
    if (rc == 0)
        rc = Cli_DBRead(cli, 1, 0, 4, buf);
    report("result", rc);
    Cli_Destroy(&cli);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 4 && strcmp(argv[1], "data") == 0)
        return data(argv[2], atoi(argv[3]));
    if (argc == 2 && strcmp(argv[1], "errors") == 0)
        return errors();
    if (argc == 4 && strcmp(argv[1], "host") == 0)
        return host(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: snap7_kit data HOST PORT | errors | host NAME PORT\n");
    return 2;
}
