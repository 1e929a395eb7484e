/* docs/performance.md, issue 15: the wrong-code bound. Build: cc -O2 -o md5-37 scripts/md5-37.c -lcrypto */
/* 37 sequential one-block MD5s of the mOTP message shape: decimal(step) || 16-hex secret || 4-digit PIN (29 bytes),
   the 37 steps of a +-18 window; OpenSSL's MD5(). Prints ns per 37 MD5s: min and median over rounds. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(void){
  enum{ROUNDS=31,REPS=20000};
  char msg[37][64]; size_t len[37];
  for(int i=0;i<37;i++){ len[i]=snprintf(msg[i],64,"%lld91b7584a2265b1f51033",176470000LL+i-18); }
  unsigned char d[16]; unsigned acc=0; double r[ROUNDS];
  for(int k=0;k<ROUNDS;k++){ double t0=now();
    for(int j=0;j<REPS;j++) for(int i=0;i<37;i++){ MD5((unsigned char*)msg[i],len[i],d); acc+=d[0]; msg[i][0]^=(d[1]&0); }
    r[k]=(now()-t0)/REPS; }
  qsort(r,ROUNDS,sizeof r[0],cmp);
  printf("msg_len=%zu 37xMD5 ns: min=%.0f median=%.0f (acc %u)\n",len[0],r[0],r[ROUNDS/2],acc);
}
